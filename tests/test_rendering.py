"""Rendering: every template in both languages, local times per reader, strictness and the sandbox."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from notifier.config import Config, load_config
from notifier.errors import TemplateProblem
from notifier.models import Incident, Subscriber, Update
from notifier.rendering import KINDS, Renderer
from notifier.samples import sample_incident, sample_subscriber, sample_update
from notifier.wording import compensation_text, format_duration, ru_plural
from tests.conftest import REPO, write_config

ABROAD = {
    "ber": {"name": {"ru": "Берлин", "en": "Berlin"}, "timezone": "Europe/Berlin"},
    "ny": {"name": {"ru": "Нью-Йорк", "en": "New York"}, "timezone": "America/New_York"},
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The shipped config plus two regions with daylight saving time; no database needed."""
    directory = tmp_path_factory.mktemp("cfg")
    path = write_config(directory, "sqlite:///unused.db", regions=ABROAD)
    return load_config(path)


@pytest.fixture(scope="module")
def renderer(config: Config) -> Renderer:
    return Renderer(config)


def flat(text: str) -> str:
    return text.replace("\xa0", " ")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def incident(**fields: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 7, "title": "Не отправляются отчёты в ФНС", "severity": "major", "status": "resolved",
        "regions": ["66", "77", "25", "39"], "services": ["tax-reporting"],
        "started_at": utc(2026, 11, 23, 5, 5), "declared_at": utc(2026, 11, 23, 5, 20),
        "resolved_at": utc(2026, 11, 23, 10, 12), "cause": "Отказал сервер базы данных.",
        "measures": "Переключили работу на резервный сервер.", "compensation_days": None,
    }  # fmt: skip
    values.update(fields)
    return Incident(**values)


def reader(region: str, locale: str = "ru", **fields: Any) -> Subscriber:
    values: dict[str, Any] = {"id": 1, "name": "Ирина Петрова", "region": region, "locale": locale,
                              "services": ";tax-reporting;"}  # fmt: skip
    values.update(fields)
    return Subscriber(**values)


def apology(renderer: Renderer, inc: Incident, region: str, locale: str = "ru", **fields: Any) -> str:
    return flat(
        renderer.render(
            "apology", incident=inc, locale=locale, subscriber=reader(region, locale, **fields)
        ).text
    )


# Every template -------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_template_renders_for_readers_in_different_zones(
    renderer: Renderer, kind: str, locale: str
) -> None:
    inc = incident(status="identified", resolved_at=None) if kind == "status" else incident()
    update = Update(id=3, incident_id=7, kind="update", status="identified", message="Переключаемся на резерв.",
                    created_at=utc(2026, 11, 23, 7, 35))  # fmt: skip
    for region, local_start in [("66", "10:05"), ("77", "08:05"), ("25", "15:05")]:
        sub = reader(region, locale) if kind != "hotline" else None
        out = renderer.render(kind, incident=inc, locale=locale, region=region, subscriber=sub, update=update,
                              unsubscribe_url="https://status.example/u/abc")  # fmt: skip
        assert out.subject and "\n" not in out.subject
        assert local_start in out.text
        assert "None" not in out.text and "{{" not in out.text
        if kind == "hotline":
            assert out.html is None
            assert "http" not in out.text  # read aloud: no links
        else:
            assert f'<html lang="{locale}">' in out.html
            assert "https://status.example/u/abc" in out.text and "https://status.example/u/abc" in out.html
            assert "Ирина Петрова" in out.text
            assert "8 800 700-12-34" in out.text and "8 800 700-12-34" in out.html
            assert "<link" not in out.html and "src=" not in out.html  # no external resources


def test_status_notice_announces_the_update_message_and_where_it_started(renderer: Renderer) -> None:
    inc = incident(status="identified", resolved_at=None)
    update = Update(id=3, incident_id=7, kind="update", status="identified",
                    message="Причина найдена: отказал сервер базы данных.", created_at=utc(2026, 11, 23, 7, 35))  # fmt: skip
    out = renderer.render("status", incident=inc, locale="ru", subscriber=reader("66"), update=update)
    text = flat(out.text)
    assert "Причина найдена: отказал сервер базы данных." in text
    assert "23 ноября 2026 г., 10:05 по времени Екатеринбурга" in text
    assert "Статус на 12:35 по времени Екатеринбурга: причина найдена, устраняем." in text
    assert "Свердловская область, Москва" in text
    assert "http://127.0.0.1:8080/" in text
    assert out.subject == "Новости о сбое: Не отправляются отчёты в ФНС"


def test_status_notice_without_an_update_says_we_are_looking_into_it(renderer: Renderer) -> None:
    inc = incident(status="investigating", resolved_at=None)
    out = renderer.render("status", incident=inc, locale="en", subscriber=reader("66", "en"))
    assert "We are already looking into it" in out.text
    assert out.subject == "Outage: Не отправляются отчёты в ФНС"


# Local times and durations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("66", "23 ноября 2026 г. с 10:05 до 15:12 по времени Екатеринбурга (5 ч 7 мин)"),
        ("77", "23 ноября 2026 г. с 08:05 до 13:12 по московскому времени (5 ч 7 мин)"),
        ("25", "23 ноября 2026 г. с 15:05 до 20:12 по времени Владивостока (5 ч 7 мин)"),
    ],
)
def test_apology_gives_the_outage_in_the_readers_own_time_zone(
    renderer: Renderer, region: str, expected: str
) -> None:
    assert f"Сбой продолжался {expected}." in apology(renderer, incident(), region)


def test_apology_in_english_uses_the_same_local_clock(renderer: Renderer) -> None:
    text = apology(renderer, incident(), "66", "en")
    assert "on November 23, 2026, from 10:05 to 15:12 Yekaterinburg time (5 h 7 min)" in text


def test_outage_over_midnight_shows_both_dates_only_where_it_crossed_midnight(renderer: Renderer) -> None:
    inc = incident(started_at=utc(2026, 3, 1, 17, 40), resolved_at=utc(2026, 3, 1, 22, 15))
    assert "с 22:40 1 марта до 03:15 2 марта 2026 г. по времени Екатеринбурга (4 ч 35 мин)" in apology(
        renderer, inc, "66"
    )
    assert "from 22:40 on March 1 to 03:15 on March 2, 2026, Yekaterinburg time (4 h 35 min)" in apology(
        renderer, inc, "66", "en"
    )
    # In Vladivostok the same outage was one morning.
    assert "2 марта 2026 г. с 03:40 до 08:15 по времени Владивостока (4 ч 35 мин)" in apology(
        renderer, inc, "25"
    )


def test_outage_over_new_year_names_both_years(renderer: Renderer) -> None:
    inc = incident(started_at=utc(2026, 12, 31, 20, 30), resolved_at=utc(2026, 12, 31, 21, 45))
    assert (
        "с 23:30 31 декабря 2026 г. до 00:45 1 января 2027 г. по московскому времени (1 ч 15 мин)"
        in apology(renderer, inc, "77")
    )


@pytest.mark.parametrize(
    ("region", "started", "resolved", "expected"),
    [
        # Berlin springs forward at 02:00 CET on 29 March 2026: 01:30 -> 04:30 on the wall is 2 hours.
        ("ber", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 2, 30), "from 01:30 to 04:30 Berlin time (2 h)"),
        # New York falls back at 02:00 EDT on 1 November 2026: 00:30 -> 02:30 on the wall is 3 hours.
        ("ny", utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 7, 30), "from 00:30 to 02:30 New York time (3 h)"),
    ],
)
def test_duration_over_a_dst_change_is_the_real_elapsed_time(
    renderer: Renderer, region: str, started: datetime, resolved: datetime, expected: str
) -> None:
    inc = incident(regions=[region], started_at=started, resolved_at=resolved)
    assert expected in apology(renderer, inc, region, "en")


def test_russian_label_for_a_foreign_zone(renderer: Renderer) -> None:
    inc = incident(regions=["ber"], started_at=utc(2026, 3, 29, 0, 30), resolved_at=utc(2026, 3, 29, 2, 30))
    assert "с 01:30 до 04:30 по времени Берлина (2 ч)" in apology(renderer, inc, "ber")


@pytest.mark.parametrize(
    ("minutes", "ru", "en"),
    [(307, "5 ч 7 мин", "5 h 7 min"), (300, "5 ч", "5 h"), (45, "45 мин", "45 min"),
     (26 * 60 + 1, "1 дн. 2 ч 1 мин", "1 d 2 h 1 min"), (0, "меньше минуты", "less than a minute")],
)  # fmt: skip
def test_durations_have_no_zero_parts(minutes: int, ru: str, en: str) -> None:
    from datetime import timedelta

    assert format_duration(timedelta(minutes=minutes), "ru") == ru
    assert format_duration(timedelta(minutes=minutes), "en") == en


# Compensation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "ru"),
    [(1, "1 день"), (3, "3 дня"), (5, "5 дней"), (11, "11 дней"), (14, "14 дней"), (21, "21 день"),
     (22, "22 дня"), (112, "112 дней")],
)  # fmt: skip
def test_compensation_is_pluralised_in_russian(renderer: Renderer, days: int, ru: str) -> None:
    assert f"мы предоставляем Вам {ru} бесплатного обслуживания." in apology(
        renderer, incident(compensation_days=days), "66"
    )


def test_compensation_in_english(renderer: Renderer) -> None:
    assert "we are giving you 1 day of free service." in apology(
        renderer, incident(compensation_days=1), "66", "en"
    )
    assert compensation_text(14, "en") == "14 days of free service"


def test_no_compensation_no_offer(renderer: Renderer) -> None:
    inc = incident(compensation_days=None)
    for locale in ("ru", "en"):
        out = renderer.render("apology", incident=inc, locale=locale, subscriber=reader("66", locale))
        assert "бесплатного" not in out.text and "free service" not in out.text
        assert "бесплатного" not in out.html and "free service" not in out.html


def test_ru_plural_rule() -> None:
    forms = ("день", "дня", "дней")
    assert [ru_plural(n, *forms) for n in (0, 1, 2, 4, 5, 11, 12, 14, 21, 101, 111, 1004)] == [
        "дней", "день", "дня", "дня", "дней", "дней", "дней", "дней", "день", "день", "дней", "дня",
    ]  # fmt: skip


# The apology's substance ----------------------------------------------------------------


def test_apology_explains_cause_measures_and_how_to_reach_support(renderer: Renderer) -> None:
    inc = incident(cause="Отказал сервер базы данных.\nРезерв не включился.", measures="Настроили резерв.")
    out = renderer.render("apology", incident=inc, locale="ru", subscriber=reader("66"),
                          unsubscribe_url="https://x.example/u/1")  # fmt: skip
    for needle in ("Отказал сервер базы данных.\nРезерв не включился.", "Настроили резерв.",
                   "От имени всей команды «Сфера Отчётности» просим прощения", "support@sfera-reporting.example",
                   "сервис «Налоговая отчётность» в Вашем регионе (Свердловская область)"):  # fmt: skip
        assert needle in out.text
    assert "Отказал сервер базы данных.<br>\nРезерв не включился." in out.html
    assert out.subject == "Приносим извинения за сбой 23 ноября: что произошло и что мы сделали"


def test_apology_names_only_the_affected_services_the_reader_uses(renderer: Renderer) -> None:
    inc = incident(services=["tax-reporting", "edo"])
    text = apology(renderer, inc, "66", services=";edo;statistics;")
    assert "Он затронул сервис «Электронный документооборот» в Вашем регионе" in text


def test_apology_for_an_open_incident_is_refused(renderer: Renderer) -> None:
    from notifier.errors import UsageError

    with pytest.raises(UsageError, match="not resolved"):
        renderer.render("apology", incident=incident(resolved_at=None), locale="ru", subscriber=reader("66"))


# Safety ---------------------------------------------------------------------------------


def test_html_escapes_a_hostile_name_while_the_text_keeps_it(renderer: Renderer) -> None:
    evil = "<script>alert(1)</script>"
    out = renderer.render("apology", incident=incident(), locale="ru", subscriber=reader("66", name=evil))
    assert f"Здравствуйте, {evil}!" in out.text
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html


def test_subject_stays_one_line_whatever_the_title_holds(renderer: Renderer) -> None:
    inc = incident(title="Сбой\r\nBcc: victim@example.org\x00")
    out = renderer.render("apology", incident=inc, locale="ru", subscriber=reader("66"))
    assert "\r" not in out.subject and "\n" not in out.subject and "\x00" not in out.subject
    out = renderer.render("status", incident=incident(resolved_at=None, title=inc.title), locale="en")
    assert out.subject == "Outage: Сбой Bcc: victim@example.org"


def copy_templates(tmp_path: Path) -> tuple[Path, Config]:
    target = tmp_path / "tpl"
    shutil.copytree(REPO / "templates", target)
    path = write_config(tmp_path, "sqlite:///unused.db", notifier={"templates": str(target)})
    return target, load_config(path)


@pytest.mark.parametrize("escape", ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
                                    "{{ incident.title.__class__.__base__.__subclasses__() }}"])  # fmt: skip
def test_a_sandbox_escape_is_refused_not_executed(tmp_path: Path, escape: str) -> None:
    target, cfg = copy_templates(tmp_path)
    (target / "email/apology/ru/subject.txt").write_text("Извините\n" + escape + "\n", encoding="utf-8")
    broken = Renderer(cfg)
    issues = broken.check()
    assert len(issues) == 1
    assert issues[0].file.endswith("email/apology/ru/subject.txt") and issues[0].line == 2
    assert "unsafe" in issues[0].message
    with pytest.raises(TemplateProblem, match=r"subject\.txt:2: .*unsafe"):
        broken.render("apology", incident=incident(), locale="ru", subscriber=reader("66"))


def test_check_names_file_and_line_of_an_undefined_variable(tmp_path: Path) -> None:
    target, cfg = copy_templates(tmp_path)
    body = target / "email/apology/ru/body.html"
    lines = body.read_text(encoding="utf-8").splitlines()
    lines[11] += "{{ incident.ticket }}"
    body.write_text("\n".join(lines), encoding="utf-8")
    issues = Renderer(cfg).check()
    assert [str(issue).split("tpl/", 1)[1] for issue in issues] == [
        "email/apology/ru/body.html:12: 'dict object' has no attribute 'ticket'"
    ]


def test_check_names_file_and_line_of_a_syntax_error(tmp_path: Path) -> None:
    target, cfg = copy_templates(tmp_path)
    (target / "hotline/en/body.txt").write_text(
        "Hello.\n\nIt is {{ incident.title }.\nBye.\n", encoding="utf-8"
    )
    issues = Renderer(cfg).check()
    assert len(issues) == 1 and issues[0].file.endswith("hotline/en/body.txt") and issues[0].line == 3
    with pytest.raises(TemplateProblem, match=r"hotline/en/body\.txt:3:"):
        Renderer(cfg).ensure_ready(["hotline"])
    Renderer(cfg).ensure_ready(["status", "apology"])  # the other kinds are fine


def test_a_mistake_in_the_shared_planned_work_layout_is_named_once(tmp_path: Path) -> None:
    target, cfg = copy_templates(tmp_path)
    layout = target / "email/_layouts/en/maintenance.html"
    lines = layout.read_text(encoding="utf-8").splitlines()
    lines[4] += "{% if %}"  # the seven planned-work letters in English all extend this file
    layout.write_text("\n".join(lines), encoding="utf-8")
    issues = Renderer(cfg).check()
    assert len(issues) == 1 and issues[0].file.endswith("email/_layouts/en/maintenance.html")
    assert issues[0].line == 5
    with pytest.raises(TemplateProblem, match=r"_layouts/en/maintenance\.html:5:"):
        Renderer(cfg).ensure_ready(["maintenance_reminder"])
    Renderer(cfg).ensure_ready(["status", "apology"])


def test_an_undefined_name_in_the_shared_layout_names_the_layout_line(tmp_path: Path) -> None:
    target, cfg = copy_templates(tmp_path)
    layout = target / "email/_layouts/ru/maintenance.html"
    lines = layout.read_text(encoding="utf-8").splitlines()
    lines[6] += "{{ maintenance.ticket }}"
    layout.write_text("\n".join(lines), encoding="utf-8")
    assert [str(issue).split("tpl/", 1)[1] for issue in Renderer(cfg).check()] == [
        "email/_layouts/ru/maintenance.html:7: 'dict object' has no attribute 'ticket'"
    ]


def test_a_missing_template_file_is_reported(tmp_path: Path) -> None:
    target, cfg = copy_templates(tmp_path)
    (target / "email/status/en/body.html").unlink()
    assert [issue.message for issue in Renderer(cfg).check()] == ["missing template file"]


def test_shipped_templates_pass_the_check(renderer: Renderer) -> None:
    assert renderer.check() == []


# Cost -----------------------------------------------------------------------------------


def test_templates_are_compiled_once_per_renderer(config: Config) -> None:
    fresh = Renderer(config)
    loads: list[str] = []
    original = fresh.env.loader.get_source  # type: ignore[union-attr]

    def counting(env: Any, name: str) -> Any:
        loads.append(name)
        return original(env, name)

    fresh.env.loader.get_source = counting  # type: ignore[method-assign,union-attr]
    inc = incident()
    for n in range(50):
        fresh.render("apology", incident=inc, locale="ru", subscriber=reader("66", name=f"Абонент {n}"))
    assert sorted(loads) == [
        "email/apology/ru/body.html",
        "email/apology/ru/body.txt",
        "email/apology/ru/subject.txt",
    ]


def test_a_mailing_renders_in_well_under_a_millisecond_per_message(config: Config) -> None:
    fresh = Renderer(config)
    inc = sample_incident(config)
    subscribers = [sample_subscriber(config, id=n, name=f"Абонент {n}") for n in range(1000)]
    fresh.render("apology", incident=inc, locale="ru", subscriber=subscribers[0])  # compile
    started = time.perf_counter()
    for sub in subscribers:
        fresh.render(
            "apology", incident=inc, locale="ru", subscriber=sub, unsubscribe_url=f"https://x/u/{sub.id}"
        )
    per_message = (time.perf_counter() - started) / len(subscribers)
    assert per_message < 0.001, f"{per_message * 1e6:.0f} µs per apology"


def test_sample_data_is_realistic(config: Config) -> None:
    inc = sample_incident(config)
    assert inc.cause and inc.measures and inc.resolved_at and set(inc.regions) <= set(config.regions)
    assert sample_update(inc).message


# Letters that share their text ------------------------------------------------------------

NAMES = ["Ирина Петрова", "", "O'Brien & <Sons> \"Ltd\"", "ООО «Ромашка»", "A" * 200, "\ue000n&<\ue001", "{{ x }}"]


def _letters(renderer: Renderer, kind: str) -> list[Any]:
    inc = incident() if kind == "apology" else incident(status="investigating", resolved_at=None)
    upd = None if kind == "apology" else Update(id=3, incident_id=7, kind="update", status="investigating",
                                                message="Ищем причину", created_at=utc(2026, 11, 23, 6, 0))  # fmt: skip
    now = utc(2026, 11, 23, 11, 0)
    return [
        renderer.render(kind, incident=inc, update=upd, locale=locale, now=now,
                        subscriber=reader(region, locale, id=n + 1, name=name),
                        unsubscribe_url="" if n % 3 == 0 else f"https://status.example/u?t={n}&x=<{n}>")  # fmt: skip
        for n, (name, region, locale) in enumerate(
            (name, region, locale) for name in NAMES for region in ("66", "25") for locale in ("ru", "en")
        )
    ]


@pytest.mark.parametrize("kind", ["apology", "status"])
def test_letters_that_share_their_text_equal_letters_rendered_in_full(config: Config, kind: str) -> None:
    shared, full = Renderer(config), Renderer(config, share_renders=False)
    assert _letters(shared, kind) == _letters(full, kind)
    assert any(entry[2] is not None for entry in shared._texts.values()), "the shipped templates should be shared"


@pytest.mark.parametrize("line", [
    '{% if "ООО" in reader.name %}Уважаемые коллеги!{% else %}Здравствуйте, {{ reader.name }}!{% endif %}',
    "{{ reader.name|upper }}", "{{ reader.name[:5] }}", "{% set who = reader.name %}{{ who }}",
    "{{ unsubscribe_url|length }}", "{% if preferences_url == '' %}-{% endif %}",
])  # fmt: skip
def test_a_template_that_looks_into_the_name_is_rendered_for_each_reader(tmp_path: Path, line: str) -> None:
    """A comparison or a filter on the reader's own values cannot be filled into a shared text:
    such a template renders in full, so every reader still gets what it says for them."""
    target, cfg = copy_templates(tmp_path)
    body = target / "email/apology/ru/body.txt"
    body.write_text(line + "\n" + body.read_text(encoding="utf-8"), encoding="utf-8")
    shared, full = Renderer(cfg), Renderer(cfg, share_renders=False)
    assert _letters(shared, "apology") == _letters(full, "apology")
    if "ООО" in line:
        texts = [letter.text for letter in _letters(shared, "apology")]
        assert sum(text.startswith("Уважаемые коллеги!") for text in texts) == 2  # ООО «Ромашка» in Russian, 2 regions
