"""The support console over real HTTP: login with personal tokens, sessions, CSRF on every
form, and the incident screens, each change recorded with who made it; on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from notifier import incidents, users
from notifier.cli.common import AppState
from notifier.db import read_session, write_session
from notifier.web import create_app
from tests.web_server import running

EN = {"Accept-Language": "en"}  # these tests read the console in English (its users are set to en)


@pytest.fixture
def base_url(config: Any, engine: Any) -> Iterator[str]:
    with running(create_app(config, engine)) as url:
        yield url


@pytest.fixture
def token(engine: Any) -> str:
    with write_session(engine) as session:
        return users.add(session, "Ivanova", locale="en")[1]


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def console(base_url: str, token: str) -> Iterator[httpx.Client]:
    """A logged-in client; ``console.csrf`` is its session's CSRF token."""
    with httpx.Client(base_url=base_url, headers=EN, timeout=20) as client:
        form = client.get("/console/login")
        data = {"name": "Ivanova", "token": token, "csrf_token": _csrf(form.text)}
        response = client.post("/console/login", data=data)
        assert response.status_code == 303 and response.headers["location"] == "/console"
        client.csrf = _csrf(client.get("/console").text)  # type: ignore[attr-defined]
        yield client


def _incidents(engine: Any) -> list[Any]:
    with read_session(engine) as session:
        return incidents.list_incidents(session)


def _declare(console: httpx.Client, **fields: Any) -> httpx.Response:
    data = {"csrf_token": console.csrf, "title": "Не отправляются отчёты", "severity": "major",  # type: ignore[attr-defined]
            "regions": ["66"], "services": ["tax-reporting"], "message": "Ищем причину", **fields}  # fmt: skip
    return console.post("/console/declare", data=data)


# Users ----------------------------------------------------------------------------------


def test_users_add_prints_a_token_once_and_stores_only_its_hash(config_path, engine) -> None:
    from notifier.cli.users import users_app

    result = CliRunner().invoke(users_app, ["add", "petrov"], obj=AppState(config_path=config_path))
    assert result.exit_code == 0, result.output
    token = result.output.split()[-1]
    with read_session(engine) as session:
        (user,) = users.list_users(session)
        assert user.name == "petrov" and token not in user.token_hash
        assert users.authenticate(session, token).name == "petrov"
        assert users.authenticate(session, token + "x") is None
    again = CliRunner().invoke(users_app, ["add", "petrov"], obj=AppState(config_path=config_path))
    assert again.exit_code != 0


# Refusals -------------------------------------------------------------------------------


def test_the_console_refuses_without_a_session(base_url, engine) -> None:
    with httpx.Client(base_url=base_url, headers=EN) as client:
        for path in ("/console", "/console/declare", "/console/incidents/INC-1"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/console/login"
        assert client.get("/console/affected", params={"region": "66"}).status_code == 401
        response = client.post("/console/declare", data={"title": "x", "regions": ["66"], "csrf_token": "x"})
        assert response.status_code in (401, 403)
    assert _incidents(engine) == []


def test_a_wrong_token_does_not_log_in(base_url) -> None:
    with httpx.Client(base_url=base_url, headers=EN) as client:
        form = client.get("/console/login")
        response = client.post(
            "/console/login", data={"name": "Ivanova", "token": "ntf_guess", "csrf_token": _csrf(form.text)}
        )
        assert response.status_code == 401 and "not valid" in response.text
        assert client.get("/console").status_code == 303


def test_a_form_without_its_csrf_token_is_refused(console, engine) -> None:
    assert _declare(console, csrf_token="").status_code == 403
    assert _declare(console, csrf_token="forged-" + console.csrf).status_code == 403
    data = {"title": "x", "regions": ["66"]}
    assert console.post("/console/declare", data=data).status_code == 403
    assert console.post("/console/logout").status_code == 403
    assert _incidents(engine) == []


def test_login_itself_needs_the_csrf_token(base_url, token) -> None:
    with httpx.Client(base_url=base_url, headers=EN) as client:
        assert client.post("/console/login", data={"name": "Ivanova", "token": token}).status_code == 403


def test_logout_ends_the_session(console) -> None:
    assert console.post("/console/logout", data={"csrf_token": console.csrf}).status_code == 303
    assert console.get("/console").status_code == 303


def test_a_disabled_users_session_ends_at_the_next_request(console, engine) -> None:
    with write_session(engine) as session:
        users.disable(session, "Ivanova")
    assert console.get("/console").status_code == 303


def test_the_session_cookie_is_signed_and_scoped_to_the_console(console) -> None:
    cookie = next(c for c in console.cookies.jar if c.name == "notifier_console")
    assert cookie.path == "/console"
    console.cookies.set("notifier_console", cookie.value[:-3] + "abc", path="/console")
    assert console.get("/console").status_code == 303


# Incident screens -----------------------------------------------------------------------


def test_declare_update_scope_and_resolve_record_who_did_it(console, engine, make_subscriber) -> None:
    make_subscriber(region="66")
    make_subscriber(region="74")
    response = _declare(console)
    assert response.status_code == 303 and response.headers["location"] == "/console/incidents/INC-1"
    page = console.get("/console/incidents/INC-1").text
    assert "Declared INC-1: 1 affected" in page and "by Ivanova" in page
    response = console.post("/console/incidents/INC-1/update",
                            data={"csrf_token": console.csrf, "status": "identified", "message": "Сервер БД"})  # fmt: skip
    assert response.status_code == 303
    response = console.post(
        "/console/incidents/INC-1/scope", data={"csrf_token": console.csrf, "regions": ["74"]}
    )
    assert "1 more affected, 2 in all" in console.get(response.headers["location"]).text
    response = console.post("/console/incidents/INC-1/resolve",
                            data={"csrf_token": console.csrf, "cause": "Отказ диска", "measures": "Замена"})  # fmt: skip
    assert response.status_code == 303
    with read_session(engine) as session:
        (incident,) = incidents.list_incidents(session)
        assert incident.status == "resolved" and incident.declared_by == incident.resolved_by == "Ivanova"
        assert incident.apology_state == "queued"
        assert {u.author for u in incidents.timeline(session, incident.id)} == {"Ivanova"}
    listing = console.get("/console").text
    assert "INC-1" in listing and re.search(r"\d+ sent · \d+ queued · \d+ failed", listing)


def test_the_live_count_of_affected_subscribers(console, make_subscriber) -> None:
    make_subscriber(region="66", services=["tax-reporting"])
    make_subscriber(region="66", services=["edo"])
    make_subscriber(region="54")
    count = console.get("/console/affected", params={"region": ["66"], "service": ["edo"]}).json()
    assert count == {"affected": 1, "active": 3}
    assert console.get("/console/affected", params={"region": ["66", "54"]}).json()["affected"] == 3
    assert console.get("/console/affected", params={"region": ["zz"]}).status_code == 400


def test_preview_shows_the_apology_and_saves_nothing(console, engine) -> None:
    _declare(console)
    page = console.post("/console/incidents/INC-1/preview",
                        data={"csrf_token": console.csrf, "cause": "Отказал массив", "measures": "Новый кластер"})  # fmt: skip
    assert page.status_code == 200
    assert "Отказал массив" in page.text and "Приносим извинения" in page.text and "<iframe" in page.text
    assert 'action="/console/incidents/INC-1/resolve"' in page.text
    (incident,) = _incidents(engine)
    assert incident.status == "investigating" and incident.cause == ""


def test_resolving_without_a_cause_holds_the_apology_until_edited(console, engine) -> None:
    _declare(console)
    response = console.post("/console/incidents/INC-1/resolve", data={"csrf_token": console.csrf})
    assert "apology is HELD" in console.get(response.headers["location"]).text
    response = console.post("/console/incidents/INC-1/edit",
                            data={"csrf_token": console.csrf, "cause": "Диск", "measures": "Замена"})  # fmt: skip
    assert response.status_code == 303
    assert _incidents(engine)[0].apology_state == "queued"


def test_a_refused_step_is_a_4xx_page_with_the_reason(console) -> None:
    _declare(console)
    console.post(
        "/console/incidents/INC-1/resolve", data={"csrf_token": console.csrf, "cause": "c", "measures": "m"}
    )
    response = console.post("/console/incidents/INC-1/update",
                            data={"csrf_token": console.csrf, "status": "identified", "message": "x"})  # fmt: skip
    assert (
        response.status_code == 409
        and "INC-1 is resolved" in response.text
        and "Traceback" not in response.text
    )
    assert _declare(console, regions=[]).status_code == 400
    assert console.get("/console/incidents/INC-99").status_code == 404


# Hotline screens ------------------------------------------------------------------------


def test_hotline_finds_a_caller_by_phone_and_logs_a_call_with_a_callback(
    console, engine, make_subscriber
) -> None:
    make_subscriber(name="Сидорова Анна", phone="+79125550011", region="66")
    _declare(console)
    page = console.get("/console/hotline", params={"q": "8 (912) 555-00-11"})
    assert "Сидорова Анна" in page.text and "Affected by an open incident" in page.text
    response = console.post("/console/hotline/calls", data={"csrf_token": console.csrf, "subscriber": "+79125550011",
                                                            "note": "Не уходит отчёт", "callback_minutes": "30"})  # fmt: skip
    assert response.status_code == 303
    callbacks = console.get("/console/callbacks").text
    assert "Не уходит отчёт" in callbacks and "Ivanova" in callbacks and "OVERDUE" not in callbacks
    assert console.post("/console/hotline/calls", data={"note": "x", "caller_phone": "1"}).status_code == 403


# Logins: limited, logged, locked; logout ends the session on the server ---------------------------


def _try_login(client: httpx.Client, name: str, token: str) -> httpx.Response:
    form = client.get("/console/login")
    return client.post("/console/login", data={"name": name, "token": token, "csrf_token": _csrf(form.text)})


def test_failed_logins_are_logged_and_lock_the_name_for_a_while(base_url, token, engine, caplog) -> None:
    caplog.set_level("INFO", logger="notifier.console")
    with httpx.Client(base_url=base_url, headers=EN) as client:
        for attempt in range(5):
            response = _try_login(client, "Ivanova", f"ntf_guess{attempt}")
            assert response.status_code == 401 and "not valid" in response.text
        failures = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
        assert len(failures) == 5 and "'Ivanova' from 127.0.0.1" in failures[0] and "(5 of 5" in failures[-1]
        locked = _try_login(client, "ivanova", token)  # even the right token, in any case
        assert locked.status_code == 429 and "locked for 15 minutes" in locked.text
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        assert client.get("/console").status_code == 303  # not logged in
    with write_session(engine) as session:
        users.add(session, "Petrov", locale="en")
    with httpx.Client(base_url=base_url, headers=EN) as other:
        assert _try_login(other, "Petrov", "ntf_wrong").status_code == 401  # other names are not locked


def test_a_token_only_logs_in_under_its_own_name(base_url, token, engine) -> None:
    with write_session(engine) as session:
        users.add(session, "Petrov", locale="en")
    with httpx.Client(base_url=base_url, headers=EN) as client:
        assert _try_login(client, "Petrov", token).status_code == 401
        assert _try_login(client, "", token).status_code == 401
        assert _try_login(client, "  ivanova ", token).status_code == 303


def test_one_address_is_limited_whatever_names_it_tries(base_url, token) -> None:
    with httpx.Client(base_url=base_url, headers=EN) as client:
        for n in range(20):
            assert _try_login(client, f"guess-{n}", "ntf_x").status_code == 401
        refused = _try_login(client, "Ivanova", token)
        assert refused.status_code == 429 and "from your address" in refused.text


def test_logout_ends_the_session_even_for_a_copied_cookie(base_url, console) -> None:
    cookie = next(c for c in console.cookies.jar if c.name == "notifier_console").value
    with httpx.Client(base_url=base_url, headers=EN) as thief:
        thief.cookies.set("notifier_console", cookie, path="/console")
        assert thief.get("/console").status_code == 200
        assert console.post("/console/logout", data={"csrf_token": console.csrf}).status_code == 303
        assert thief.get("/console").status_code == 303  # the copy is dead too
        assert thief.get("/console").headers["location"] == "/console/login"


def test_logging_in_again_after_logout_works(base_url, console, token) -> None:
    console.post("/console/logout", data={"csrf_token": console.csrf})
    assert _try_login(console, "Ivanova", token).status_code == 303
    assert console.get("/console").status_code == 200


# Bad input on the console: 4xx, never a 500 ----------------------------------------------------------


@pytest.mark.parametrize("number", ["99999999999999999999999", "2147483648", "0", "abc", "²"])
def test_a_callback_number_that_cannot_exist_is_404(console, number) -> None:
    response = console.post(
        f"/console/callbacks/{number}/done", data={"csrf_token": console.csrf, "outcome": "x"}
    )
    assert response.status_code == 404 and "No callback" in response.text


def test_a_huge_form_is_413_without_being_read(base_url) -> None:
    with httpx.Client(base_url=base_url, headers=EN, timeout=20) as client:
        response = client.post("/console/login", content=b"token=" + b"x" * (5 * 1024 * 1024),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert response.status_code == 413 and "larger than 1024 KB" in response.text


def test_a_user_name_with_direction_characters_is_refused(engine) -> None:
    from notifier.errors import UsageError

    with pytest.raises(UsageError, match="direction"), write_session(engine) as session:
        users.add(session, "Iva\u202enova", locale="en")


# Content-Security-Policy: no inline code anywhere ----------------------------------------------------


def test_no_page_allows_inline_scripts_or_styles(console, base_url) -> None:
    _declare(console)
    pages = [console.get(path) for path in ("/console", "/console/declare", "/console/incidents/INC-1",
                                            "/console/login", "/console/hotline", "/console/callbacks")]  # fmt: skip
    with httpx.Client(base_url=base_url, headers=EN) as public:
        pages += [public.get(path) for path in ("/", "/unsubscribe/x.y", "/nowhere", "/api/v2/summary.json")]
    for response in pages:
        policy = response.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "script-src 'self'" in policy, response.url
        assert (
            "<script>" not in response.text
            and "<style" not in response.text
            and "style=" not in response.text
        )
    css = console.get("/static/notifier.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert console.get("/static/declare.js").status_code == 200


def test_the_preview_alone_allows_the_letters_inline_styles_and_no_script(console) -> None:
    _declare(console)
    page = console.post(
        "/console/incidents/INC-1/preview", data={"csrf_token": console.csrf, "cause": "c", "measures": "m"}
    )
    policy = page.headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy and "script-src 'none'" in policy


def test_the_api_docs_are_off_and_the_openapi_document_stays(base_url) -> None:
    with httpx.Client(base_url=base_url, headers=EN) as client:
        assert client.get("/api/docs").status_code == 404
        assert client.get("/api/openapi.json").json()["paths"]


def test_pages_defuse_stored_direction_characters_and_show_look_alike_domains_in_ascii(
    console, make_subscriber
) -> None:
    make_subscriber(name="Ива\u202eнова\x9b", email="billing@аррӏе.com", phone="+79125550077", region="66")
    page = console.get("/console/hotline", params={"q": "+79125550077"}).text
    assert "\u202e" not in page and "\x9b" not in page and "Ива\ufffdнова\ufffd" in page
    assert "billing@xn--80ak6aa92e.com" in page and "аррӏе" not in page


def test_planned_work_is_scheduled_from_the_console_and_announced(console, engine, config, make_subscriber) -> None:
    from datetime import timedelta

    from sqlmodel import select

    from notifier.models import Message, utcnow

    make_subscriber(region="66")
    starts = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    data = {"csrf_token": console.csrf, "title": "Обновление сервера БД", "regions": ["66"],
            "starts": starts.strftime("%Y-%m-%dT%H:%M"), "ends": (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            "message": "Отчёты отправятся после работ."}  # fmt: skip
    done = console.post("/console/maintenance", data=data)
    assert done.status_code == 303 and done.headers["location"] == "/console/maintenance"
    listed = console.get("/console/maintenance").text
    assert "Scheduled MNT-1: 1 affected, announced." in listed and "Обновление сервера БД" in listed
    with read_session(engine) as session:
        kinds = {m.kind for m in session.exec(select(Message).where(Message.maintenance_id.is_not(None)))}
    assert "maintenance" in kinds  # the announcement is queued at once
    bad = console.post("/console/maintenance", data={**data, "starts": "someday"})
    assert bad.status_code == 400 and "starts" in bad.text
    forged = console.post("/console/maintenance", data={**data, "csrf_token": "forged"})
    assert forged.status_code == 403
