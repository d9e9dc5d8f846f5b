"""What an SMS costs: GSM-7 160/153 per segment, UCS-2 70/67 (any Cyrillic letter), and
the SMS templates' own checks (segments within [sms].max_segments, never cut)."""

from __future__ import annotations

import pytest

from notifier import segments
from notifier.config import load_config
from notifier.errors import TemplateProblem
from notifier.rendering import Renderer
from notifier.samples import sample_incident, sample_subscriber
from tests.conftest import REPO, write_config


@pytest.mark.parametrize(
    ("text", "count", "encoding"),
    [
        ("A" * 160, 1, "GSM-7"), ("A" * 161, 2, "GSM-7"), ("A" * 306, 2, "GSM-7"), ("A" * 307, 3, "GSM-7"),
        ("Б" * 70, 1, "UCS-2"), ("Б" * 71, 2, "UCS-2"), ("Б" * 134, 2, "UCS-2"), ("Б" * 135, 3, "UCS-2"),
        ("A" * 159 + "Ж", 3, "UCS-2"),  # one Cyrillic letter turns 160 characters into three segments
        ("€" * 80, 1, "GSM-7"), ("€" * 81, 2, "GSM-7"),  # the euro sign costs two septets
        ("Hello «there»", 1, "UCS-2"), ("😀" * 35, 1, "UCS-2"), ("😀" * 36, 2, "UCS-2"),
    ],
)  # fmt: skip
def test_segments_follow_gsm7_and_ucs2_limits(text: str, count: int, encoding: str) -> None:
    found = segments.count(text)
    assert (found.count, found.encoding) == (count, encoding)


def test_a_part_never_splits_an_escape_sequence() -> None:
    # 152 plain septets and a euro sign: the sign's two septets do not fit the first part of 153.
    assert segments.count("a" * 152 + "€" + "b" * 100).count == 2
    assert segments.count("a" * 152 + "€" * 77 + "b").count == 3


def test_description_names_count_encoding_and_room() -> None:
    assert segments.count("Б" * 118).describe() == "2 segments, UCS-2 (118 characters; up to 134 fit in 2)"


def _config(tmp_path, **sms):
    return load_config(write_config(tmp_path, f"sqlite:///{tmp_path}/x.db", sms=sms))


def test_shipped_sms_templates_fit_the_default_budget_in_every_language(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFIER_SECRET", "s" * 32)
    config = _config(tmp_path)
    renderer = Renderer(config)
    assert renderer.check() == []
    for locale in ("ru", "en"):
        text = renderer.render("apology", incident=sample_incident(config), locale=locale,
                               subscriber=sample_subscriber(config, locale=locale), channel="sms").text
        assert segments.count(text).count <= config.sms.max_segments
        assert "/letters/42/1." in text  # the reader's own full letter


def test_templates_check_refuses_an_sms_longer_than_max_segments(tmp_path, cli) -> None:
    config = _config(tmp_path, max_segments=2)
    result = cli("templates", "check", config=config.path)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert any("sms/apology/ru/body.txt" in line and "more than [sms].max_segments = 2" in line for line in lines)
    assert any("UCS-2" in line for line in lines)


def test_an_sms_over_the_limit_at_send_time_is_a_template_problem_not_a_cut_text(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NOTIFIER_SECRET", "s" * 32)
    config = _config(tmp_path, max_segments=3)
    long_title = sample_incident(config, title="Ж" * 200)
    with pytest.raises(TemplateProblem, match="sms/apology/ru/body.txt: renders 4 segments, UCS-2"):
        Renderer(config).render("apology", incident=long_title, locale="ru",
                                subscriber=sample_subscriber(config), channel="sms")


def test_sms_templates_are_strict_like_the_email_ones(tmp_path) -> None:
    templates = tmp_path / "templates"
    import shutil

    shutil.copytree(REPO / "templates", templates)
    (templates / "sms/status/en/body.txt").write_text("{{ company }}: {{ incident.eta }}\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, f"sqlite:///{tmp_path}/x.db", notifier={"templates": str(templates)}))
    issues = [str(issue) for issue in Renderer(config).check()]
    assert any("sms/status/en/body.txt:1:" in issue and "eta" in issue for issue in issues)


def test_preview_channel_sms_shows_segments_then_the_text(cli, engine, make_subscriber) -> None:
    reader = make_subscriber(region="66", email=None, name="Ирина Петрова")
    declared = cli("incident", "declare", "--title", "Не отправляются отчёты в ФНС", "--region", "66", "--json")
    ref = declared.json()["id"]
    cli("incident", "resolve", ref, "--cause", "Диск", "--measures", "Замена")
    shown = cli("preview", ref, "--kind", "apology", "--channel", "sms", "--subscriber", reader.external_id)
    assert shown.exit_code == 0, shown.stderr
    head, _, text = shown.stdout.partition("\n\n")
    assert head.startswith("Segments: ") and "UCS-2" in head and "at most 4 allowed" in head
    assert text.startswith("Сфера Отчётности: Не отправляются отчёты в ФНС") and f"/letters/{ref[4:]}/" in text
    assert segments.count(text.strip()).describe() in head
    wrong = cli("preview", ref, "--kind", "hotline", "--channel", "sms")
    assert wrong.exit_code == 2 and wrong.stderr.startswith("error: --channel sms previews")
