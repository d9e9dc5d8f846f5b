"""`notifier outbox` and `notifier report`: counts by kind and state, and the timeline."""

from __future__ import annotations


def test_outbox_and_report_count_by_kind_and_state(cli, make_subscriber) -> None:
    for _ in range(2):
        make_subscriber(region="66")
    make_subscriber(region="77")
    cli("incident", "declare", "--title", "Сбой", "--region", "66", "--by", "petrov")
    cli("incident", "update", "INC-1", "--status", "identified", "--message", "Причина найдена")
    cli("incident", "resolve", "INC-1", "--cause", "Отказ сервера", "--measures", "Резерв")

    counts = cli("outbox", "INC-1", "--json").json()["messages"]
    assert counts == {"status": {"cancelled": 4}, "apology": {"queued": 2}, "hotline": {"cancelled": 2, "queued": 1}}

    report = cli("report", "INC-1", "--json").json()
    assert report["id"] == "INC-1" and report["status"] == "resolved" and report["audience"] == 2
    assert report["messages"]["apology"] == {"queued": 2}
    assert [e["kind"] for e in report["timeline"]] == ["declared", "update", "resolved"]
    assert report["timeline"][0]["by"] == "petrov"

    human = cli("report", "INC-1")
    assert "Audience: 2 subscribers" in human.stdout and "Cause: Отказ сервера" in human.stdout


def test_outbox_of_unknown_incident_is_one_line(cli) -> None:
    result = cli("outbox", "INC-42")
    assert result.exit_code == 1 and "INC-42" in result.stderr
