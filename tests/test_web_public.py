"""The public side over real HTTP: status page, Statuspage-shaped API, Atom feed, one-click
unsubscribe, error pages, and no personal data anywhere (a canary test), on both databases."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier import incidents
from notifier.db import read_session, write_session
from notifier.models import Call, Callback, Subscriber, utcnow
from notifier.tokens import make_token
from notifier.web import create_app
from tests.conftest import SECRET
from tests.web_server import running

STATUSES = {"investigating", "identified", "monitoring", "resolved"}
IMPACTS = {"none", "minor", "major", "critical"}
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage"}


@pytest.fixture
def web(config: Any, engine: Any) -> Iterator[httpx.Client]:
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


@pytest.fixture
def declare(config: Any, engine: Any) -> Callable[..., Any]:
    def run(**fields: Any) -> Any:
        fields.setdefault("title", "Не отправляются отчёты в ФНС")
        fields.setdefault("regions", ["66"])
        fields.setdefault("services", ["tax-reporting"])
        with write_session(engine) as session:
            return incidents.declare(session, config, **fields).incident

    return run


def _step(engine: Any, config: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with write_session(engine) as session:
        return fn(session, config, *args, **kwargs)


# The status page ------------------------------------------------------------------------


def test_status_page_shows_an_open_incident_with_its_updates_newest_first(
    web, declare, engine, config
) -> None:
    incident = declare(message="Ищем причину сбоя")
    _step(
        engine, config, incidents.post_update, incident.id, status="identified", message="Отказал сервер БД"
    )
    page = web.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="ru">' in html
    assert "Не отправляются отчёты в ФНС" in html and "Свердловская область" in html
    assert "Налоговая отчётность" in html and "серьёзный" in html
    assert html.index("Отказал сервер БД") < html.index("Ищем причину сбоя")
    assert "по времени Екатеринбурга" in html  # local time of the region
    assert 'name="viewport"' in html and "<main" in html and "<h1>" in html


def test_status_page_with_nothing_open_says_everything_works(web) -> None:
    html = web.get("/").text
    assert "Сейчас сбоев нет" in html
    assert html.count("работает</span>") == 4  # every service operational


def test_region_filter_shows_only_incidents_in_that_region(web, declare) -> None:
    declare(title="Сбой в Екатеринбурге", regions=["66"])
    declare(title="Сбой в Новосибирске", regions=["54"])
    html = web.get("/", params={"region": "54"}).text
    assert "Сбой в Новосибирске" in html and "Сбой в Екатеринбурге" not in html
    assert "по времени Новосибирска" in html


def test_an_unknown_region_gets_a_400_page(web) -> None:
    response = web.get("/", params={"region": "<script>"})
    assert response.status_code == 400
    assert "Региона с таким кодом нет" in response.text and "<script>" not in response.text


def test_resolved_incidents_stay_30_days(web, declare, engine, config) -> None:
    old = utcnow() - timedelta(days=40)
    gone = declare(title="Давний сбой", now=old, started_at=old)
    _step(engine, config, incidents.resolve, gone.id, cause="c", measures="m", now=old + timedelta(hours=1))
    recent = declare(title="Недавний сбой")
    _step(engine, config, incidents.resolve, recent.id, cause="Отказал диск", measures="Заменили диск")
    html = web.get("/").text
    assert "Недавний сбой" in html and "Давний сбой" not in html
    assert "Устранены за последние 30 дней" in html and "Сбой устранён." in html


def test_service_summary_follows_open_incidents(web, declare, engine, config) -> None:
    incident = declare(severity="critical", services=["edo"])
    components = {c["id"]: c["status"] for c in web.get("/api/v2/components.json").json()["components"]}
    assert components["edo"] == "major_outage" and components["tax-reporting"] == "operational"
    _step(engine, config, incidents.post_update, incident.id, status="monitoring", message="Восстановили")
    components = {c["id"]: c["status"] for c in web.get("/api/v2/components.json").json()["components"]}
    assert components["edo"] == "degraded_performance"


# The Statuspage-shaped API --------------------------------------------------------------


def test_summary_has_statuspage_shape(web, declare) -> None:
    declare(severity="minor", message="Первое сообщение")
    body = web.get("/api/v2/summary.json").json()
    assert set(body) >= {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert set(body["page"]) >= {"id", "name", "url", "time_zone", "updated_at"}
    assert body["status"]["indicator"] in IMPACTS and body["status"]["description"]
    for component in body["components"]:
        assert component["status"] in COMPONENT_STATUSES
        assert set(component) >= {"id", "name", "status", "position", "updated_at", "page_id"}
    (incident,) = body["incidents"]
    assert incident["status"] in STATUSES and incident["impact"] == "minor"
    assert set(incident) >= {"id", "name", "status", "impact", "created_at", "updated_at", "shortlink",
                             "resolved_at", "monitoring_at", "incident_updates", "components"}  # fmt: skip
    (update,) = incident["incident_updates"]
    assert update["body"] == "Первое сообщение" and update["status"] == "investigating"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", update["created_at"])


def test_incidents_and_unresolved(web, declare, engine, config) -> None:
    first = declare(title="Первый")
    declare(title="Второй")
    _step(engine, config, incidents.resolve, first.id, cause="c", measures="m")
    every = web.get("/api/v2/incidents.json").json()["incidents"]
    assert [i["name"] for i in every] == ["Второй", "Первый"]
    assert every[1]["status"] == "resolved" and every[1]["resolved_at"]
    unresolved = web.get("/api/v2/incidents/unresolved.json").json()["incidents"]
    assert [i["name"] for i in unresolved] == ["Второй"]
    status = web.get("/api/v2/status.json").json()
    assert status["status"]["indicator"] == "major" and "page" in status


def test_the_public_api_is_open_to_cross_origin_gets(web) -> None:
    response = web.get("/api/v2/summary.json", headers={"Origin": "https://dashboard.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_history_feed_is_atom_with_one_entry_per_incident(web, declare) -> None:
    declare(title="Сбой <в> ленте & только")
    response = web.get("/history.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("a:entry", ns)
    assert len(entries) == 1
    assert entries[0].find("a:title", ns).text.startswith("Сбой <в> ленте & только")


def test_openapi_describes_the_json_endpoints(web) -> None:
    paths = web.get("/api/openapi.json").json()["paths"]
    assert {"/api/v2/summary.json", "/api/v2/incidents.json", "/api/alerts/alertmanager"} <= set(paths)
    assert not any(path.startswith("/console") for path in paths)
    # Client generators key on operationId: the phone line's GET and POST must not share one.
    ids = [operation["operationId"] for methods in paths.values() for operation in methods.values()]
    assert len(ids) == len(set(ids)) and "twiml_post" in ids


# One-click unsubscribe ------------------------------------------------------------------


def _status(engine: Any, subscriber_id: int) -> str:
    with read_session(engine) as session:
        return session.get(Subscriber, subscriber_id).status


def test_one_click_post_unsubscribes_at_once_and_again_changes_nothing(web, make_subscriber, engine) -> None:
    subscriber = make_subscriber()
    url = f"/unsubscribe/{make_token(SECRET.encode(), subscriber.id)}"
    for _ in range(2):
        response = web.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "Вы отписались" in response.text
        assert "set-cookie" not in response.headers
        assert _status(engine, subscriber.id) == "unsubscribed"


def test_get_only_asks_and_changes_nothing(web, make_subscriber, engine) -> None:
    subscriber = make_subscriber()
    token = make_token(SECRET.encode(), subscriber.id)
    page = web.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert f'action="/unsubscribe/{token}"' in page.text and 'value="One-Click"' in page.text
    assert subscriber.email not in page.text and subscriber.name not in page.text
    assert _status(engine, subscriber.id) == "active"


def test_a_post_without_the_one_click_field_changes_nothing(web, make_subscriber, engine) -> None:
    subscriber = make_subscriber()
    response = web.post(f"/unsubscribe/{make_token(SECRET.encode(), subscriber.id)}", data={})
    assert response.status_code == 400
    assert _status(engine, subscriber.id) == "active"


def test_forged_cut_or_mangled_tokens_fail_and_change_nothing(web, make_subscriber, engine) -> None:
    subscriber = make_subscriber()
    other = make_subscriber()
    token = make_token(SECRET.encode(), subscriber.id)
    mac = token.split(".")[1]
    bad = [token[:-1], token[:-5], f"{other.id}.{mac}", make_token(b"another-secret-0123456789", subscriber.id),
           token.upper(), f"0{token}", token + "A", "x", f"{subscriber.id}", f"{subscriber.id}."]  # fmt: skip
    for forged in bad:
        for method in ("GET", "POST"):
            response = web.request(method, f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"})
            assert 400 <= response.status_code < 500, (forged, method)
            assert "недействительна" in response.text
    assert _status(engine, subscriber.id) == "active" and _status(engine, other.id) == "active"


def test_a_genuine_token_for_a_deleted_subscriber_gets_404(web) -> None:
    response = web.post(
        f"/unsubscribe/{make_token(SECRET.encode(), 999_999)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 404


# Errors ---------------------------------------------------------------------------------


def test_unknown_pages_get_a_404_page_and_api_paths_json(web) -> None:
    page = web.get("/no/such/page")
    assert page.status_code == 404 and "Страница не найдена" in page.text and "Traceback" not in page.text
    api = web.get("/api/v2/nothing.json")
    assert api.status_code == 404 and api.json()["error"]["status"] == 404


# No personal data on public pages (canary) ----------------------------------------------

CANARIES = ["Канарейкин", "Zzcanaryname", "canary.bird@canary-mail.example", "9161234567", "ACC-CANARY-7",
            "Canary-secret-note", "canary-callback-outcome", "canary-staff-name"]  # fmt: skip


def test_no_personal_data_on_any_public_page_api_feed_or_error_page(
    web, config, engine, make_subscriber
) -> None:
    person = make_subscriber(name="Канарейкин Zzcanaryname", email="canary.bird@canary-mail.example",
                             phone="+79161234567", external_id="ACC-CANARY-7", region="66")  # fmt: skip
    with write_session(engine) as session:
        step = incidents.declare(session, config, title="Сбой отчётов", regions=["66"], services=["tax-reporting"],
                                 message="Ищем", by="canary-staff-name")  # fmt: skip
        incident_id = step.incident.id
        incidents.widen_scope(
            session, config, incident_id, add_regions=["54"], add_services=[], by="canary-staff-name"
        )
        call = Call(subscriber_id=person.id, caller_phone="+79161234567", incident_id=incident_id,
                    note="Canary-secret-note", taken_by="canary-staff-name")  # fmt: skip
        session.add(call)
        session.flush()
        session.add(Callback(call_id=call.id, owner="canary-staff-name", outcome="canary-callback-outcome"))
    second = _step(
        engine, config, incidents.declare, title="Второй сбой", regions=["66"], by="canary-staff-name"
    ).incident
    _step(
        engine, config, incidents.resolve, second.id, cause="Диск", measures="Замена", by="canary-staff-name"
    )
    token = make_token(SECRET.encode(), person.id)
    pages = ["/", "/?region=66", "/?region=54", "/?region=nope", "/api/v2/summary.json", "/api/v2/status.json",
             "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json", "/api/v2/components.json",
             "/history.atom", "/no-such-page", "/api/v2/none.json", f"/unsubscribe/{token}",
             f"/unsubscribe/{token[:-2]}", "/unsubscribe/1.forged", "/api/openapi.json", "/robots.txt"]  # fmt: skip
    for path in pages:
        body = web.get(path).text
        for canary in CANARIES:
            assert canary not in body, (path, canary)
        assert "Traceback" not in body
    posted = web.post("/unsubscribe/1.forged", data={"List-Unsubscribe": "One-Click"}).text
    assert not any(canary in posted for canary in CANARIES)


# Property tests: no input gets a 500 ----------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_token = st.one_of(_text, st.text(alphabet=string.ascii_letters + string.digits + "._-=%", max_size=70))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(region=_text, path=st.sampled_from(["/", "/api/v2/summary.json", "/api/v2/incidents.json",
                                          "/api/v2/status.json", "/api/v2/components.json",
                                          "/api/v2/incidents/unresolved.json", "/history.atom"]),
       token=_token, one_click=_text)  # fmt: skip
def test_no_query_or_token_gets_a_server_error(web, path, region, token, one_click) -> None:
    assert web.get(path, params={"region": region}).status_code < 500
    for method in ("GET", "POST"):
        response = web.request(
            method, "/unsubscribe/" + quote(token, safe=""), data={"List-Unsubscribe": one_click}
        )
        assert response.status_code < 500 and "Traceback" not in response.text
