"""/metrics for the people on call: Prometheus' text format that parses, counters that agree with
the outbox after a real mailing, the token and separate-address protection, and a real
Prometheus server (Debian's) scraping `notifier serve`."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier import incidents
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.outbox import counts
from notifier.web import create_app
from tests.conftest import declare_and_resolve, free_port, mail_config, wait_until
from tests.processes import environment, notifier_command
from tests.web_server import running

TOKEN = "metrics-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/metrics", headers=headers, timeout=20, trust_env=False)


@pytest.fixture
def mailing(engine: Any, config: Any, make_subscriber: Any, smtp_server: Any, tmp_path: Path, monkeypatch: Any) -> Any:
    monkeypatch.setenv("NOTIFIER_METRICS_TOKEN", TOKEN)
    cfg = mail_config(tmp_path / "m", config.notifier.database, smtp_server.port)
    for _ in range(6):
        make_subscriber(region="66")
    make_subscriber(region="77")  # not affected
    return cfg


def test_counters_and_gauges_agree_with_the_outbox_after_a_mailing(engine, mailing, smtp_server) -> None:
    cfg = mailing
    with running(create_app(cfg, engine)) as url:
        before = samples(scrape(url).text)
        with write_session(engine) as session:
            ref = incidents.declare(session, cfg, title="Сбой", regions=["66"], message="Ищем").incident.id
        asyncio.run(send_due(engine, cfg))
        with write_session(engine) as session:
            incidents.resolve(session, cfg, ref, cause="Диск", measures="Замена")
        report = asyncio.run(send_due(engine, cfg))
        response = scrape(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    with read_session(engine) as session:
        outbox = counts(session)
    for kind, states in outbox.items():
        for state, n in states.items():
            assert value(after, "notifier_outbox_messages", kind=kind, channel="email", state=state) == n
    sent = value(after, "notifier_messages_total", outcome="sent", kind="apology", channel="email")
    assert sent - value(before, "notifier_messages_total", outcome="sent", kind="apology", channel="email") == 6
    assert report.sent == 6
    latency = "notifier_send_latency_seconds_count"
    assert value(after, latency, kind="apology", channel="email") - value(before, latency, kind="apology", channel="email") == 6
    assert value(after, "notifier_incident_audience", incident=f"INC-{ref}") == 6
    assert value(after, "notifier_incident_messages", incident=f"INC-{ref}", kind="apology", channel="email",
                 state="sent") == 6  # fmt: skip
    seconds = value(after, "notifier_incident_apology_seconds", incident=f"INC-{ref}")
    assert 0 <= seconds < 60  # resolved, then every apology accepted within the minute
    with read_session(engine) as session:
        first = incidents.latest_public_update(session, ref)
    assert value(after, "notifier_incident_reached_within_5m_ratio", incident=f"INC-{ref}", update=str(first.id)) == 1.0


def test_metrics_need_the_token(engine, mailing, monkeypatch) -> None:
    with running(create_app(mailing, engine)) as url:
        assert scrape(url, token=None).status_code == 401
        assert scrape(url, token="wrong").status_code == 401
        assert "notifier_" not in scrape(url, token="wrong").text
        monkeypatch.delenv("NOTIFIER_METRICS_TOKEN")
        off = scrape(url)
        assert off.status_code == 503 and "NOTIFIER_METRICS_TOKEN" in off.text


def test_a_paused_mailing_and_the_senders_show(engine, mailing) -> None:
    from notifier.models import utcnow
    from notifier.outbox import pauses
    from notifier.outbox.claims import Presence

    Presence.here().register(engine, utcnow())
    with write_session(engine) as session:
        pauses.pause(session, mailing, ("status", "email", "ru"), "x.txt:1: boom", "d", utcnow())
    with running(create_app(mailing, engine)) as url:
        found = samples(scrape(url).text)
    assert value(found, "notifier_mailings_paused", kind="status", channel="email", locale="ru") == 1
    assert value(found, "notifier_senders") >= 1
    ages = [v for (name, _), v in found.items() if name == "notifier_sender_heartbeat_age_seconds"]
    assert ages and all(0 <= age < 60 for age in ages)


# A real Prometheus scraping `notifier serve` ------------------------------------------------

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.mark.slow
@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Prometheus is not installed (apt-get install prometheus)")
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_prometheus_scrapes_serve_and_sees_the_apologies(engine, mailing, smtp_server, tmp_path) -> None:
    """Debian's Prometheus, on 127.0.0.1 with a config of the test's own: one job scraping
    serve's /metrics with the bearer token, one scraping the token-less [serve].metrics_listen."""
    web_port, plain_port, prom_port = free_port(), free_port(), free_port()
    cfg = mail_config(tmp_path / "serve", mailing.notifier.database, smtp_server.port,
                      mailing={"send_status_notices": False},
                      serve={"tick": "0.2s", "metrics_listen": f"127.0.0.1:{plain_port}"})  # fmt: skip
    declare_and_resolve(engine, cfg, ["66"])
    work = Path(tempfile.mkdtemp(prefix="notifier-prometheus-"))
    (work / "token").write_text(TOKEN)
    (work / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: notifier
    authorization: {{credentials_file: {work / "token"}}}
    static_configs: [{{targets: ["127.0.0.1:{web_port}"]}}]
  - job_name: notifier-plain
    static_configs: [{{targets: ["127.0.0.1:{plain_port}"]}}]
""")
    daemon = subprocess.Popen(notifier_command("serve", "--port", str(web_port)), env=environment(cfg),
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("ab"))  # fmt: skip
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("ab"),
    )  # fmt: skip
    try:
        assert wait_until(lambda: len(smtp_server.received) >= 6, 30), (tmp_path / "serve.log").read_text()

        def seen(job: str) -> float | None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", trust_env=False, timeout=5, params={
                    "query": f'notifier_outbox_messages{{job="{job}",kind="apology",state="sent"}}'}).json()
            except httpx.HTTPError:
                return None
            result = answer.get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None

        assert wait_until(lambda: seen("notifier") == 6, 40), (tmp_path / "prometheus.log").read_text()[-2000:]
        assert wait_until(lambda: seen("notifier-plain") == 6, 20)
        targets = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/targets", trust_env=False, timeout=5).json()
        assert {t["health"] for t in targets["data"]["activeTargets"]} == {"up"}
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)
        daemon.terminate()
        daemon.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    with read_session(engine) as session:
        assert counts(session)["apology"] == {"sent": 6}


def test_the_alert_rules_in_docs_are_valid_prometheus_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (it comes with Debian's prometheus)")
    from tests.conftest import REPO

    result = subprocess.run([promtool, "check", "rules", str(REPO / "docs" / "alerts.yml")], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_grafana_dashboard_uses_only_metrics_notifier_exposes() -> None:
    import json
    import re

    from tests.conftest import REPO

    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = {n for e in exprs for n in re.findall(r"\bnotifier_[a-z_0-9]+", e)}
    exposed = {"notifier_outbox_messages", "notifier_messages_total", "notifier_send_latency_seconds_bucket",
               "notifier_send_latency_seconds_count", "notifier_send_latency_seconds_sum", "notifier_smtp_errors_total",
               "notifier_sender_heartbeat_age_seconds", "notifier_senders", "notifier_mailings_paused",
               "notifier_incident_audience", "notifier_incident_messages", "notifier_incident_apology_seconds",
               "notifier_incident_reached_within_5m_ratio"}  # fmt: skip
    assert names and names <= exposed, names - exposed
