"""The phone line over real HTTP on both databases: TwiML with only what Twilio documents,
VoiceXML 2.1, WAVs from espeak-ng, the caller lookup (token, rate limit, nobody else's data,
every lookup logged) and the keypad's callbacks, which escalate like the operators' do."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from notifier import hotline
from notifier.config import load_config
from notifier.db import read_session, write_session
from notifier.models import Call, Callback, Message, utcnow
from notifier.web import create_app
from tests.conftest import REPO, write_config
from tests.test_voice import STARTED, needs_espeak
from tests.web_server import running

TOKEN = "ivr-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
VXML = "{http://www.w3.org/2001/vxml}"

# What Twilio documents for the verbs used (twilio.com/docs/voice/twiml: Say, Play, Gather,
# Dial, Redirect, Hangup, Pause): element -> (attributes, elements it may contain).
TWILIO = {
    "Response": (set(), {"Say", "Play", "Gather", "Dial", "Redirect", "Hangup", "Pause"}),
    "Say": ({"voice", "loop", "language"}, set()),
    "Play": ({"loop", "digits"}, set()),
    "Gather": ({"action", "method", "timeout", "numDigits", "finishOnKey", "input", "language", "hints",
                "speechTimeout", "actionOnEmptyResult", "partialResultCallback", "bargeIn"}, {"Say", "Play", "Pause"}),
    "Dial": ({"action", "method", "timeout", "callerId", "hangupOnStar", "timeLimit", "record", "answerOnBridge"},
             {"Number"}),
    "Redirect": ({"method"}, set()),
    "Hangup": (set(), set()),
    "Pause": ({"length"}, set()),
}  # fmt: skip


def check_twiml(body: bytes) -> ET.Element:
    """Parse TwiML and refuse anything Twilio does not document; returns the <Response>."""
    root = ET.fromstring(body)
    assert root.tag == "Response"

    def visit(element: ET.Element) -> None:
        attributes, children = TWILIO[element.tag]
        assert set(element.attrib) <= attributes, (element.tag, element.attrib)
        for child in element:
            assert child.tag in children, f"<{child.tag}> inside <{element.tag}>"
            visit(child)
        if element.tag == "Say":
            assert element.get("language") in {"ru-RU", "en-GB"} and (element.text or "").strip()
            assert len(element.text or "") <= 4000
        if element.tag == "Gather":
            assert element.get("numDigits") == "1" and element.get("method") in {"GET", "POST"}
            assert element.get("input") == "dtmf" and element.get("timeout", "").isdigit()
        if element.tag in {"Play", "Redirect"}:
            assert (element.text or "").startswith("http")

    visit(root)
    return root


def said(root: ET.Element, vxml: bool = False) -> str:
    tag = f"{VXML}s" if vxml else "Say"
    return " ".join(e.text or "" for e in root.iter(tag))


@contextmanager
def serving(config: Any, engine: Any) -> Iterator[httpx.Client]:
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def web(config: Any, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setenv(config.ivr.token_env, TOKEN)
    with serving(config, engine) as client:
        yield client


def declare_outage(cli: Callable[..., Any]) -> None:
    """The Kontur-like case; its audience is whoever is in 66 and 54 with tax reporting now."""
    assert cli("incident", "declare", "--title", "Не отправляются отчёты в ФНС", "--region", "66", "--region", "54",
               "--service", "tax-reporting", "--started-at", STARTED, "--message", "Отчёты не уходят, разбираемся"
               ).exit_code == 0  # fmt: skip


@pytest.fixture
def outage(cli: Callable[..., Any]) -> None:
    declare_outage(cli)


def twiml(web: httpx.Client, auth: Any = ("ivr", TOKEN), **params: str) -> ET.Element:
    response = web.post("/hotline/voice/twiml", params={k: v for k, v in params.items() if k != "From"},
                        data={"From": params["From"]} if "From" in params else {}, auth=auth)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return check_twiml(response.content)


def ivr_calls(engine: Any) -> list[Call]:
    with read_session(engine) as session:
        return list(session.exec(select(Call).where(Call.source == "ivr").order_by(Call.id)))


# TwiML and VoiceXML ---------------------------------------------------------------------


def test_twiml_says_the_regions_announcement_then_offers_the_keypad(web, outage) -> None:
    root = twiml(web, region="66", locale="ru")
    gather = root.find("Gather")
    assert gather is not None and gather.get("action", "").startswith("http")
    text = said(gather)
    assert "Отчёты не уходят, разбираемся" in text and "10:05 по времени Екатеринбурга" in text
    assert text.endswith("Чтобы мы вам перезвонили, нажмите 1.")
    assert [e.tag for e in root][-2:] == ["Say", "Hangup"]  # no key: goodbye


def test_twiml_and_vxml_follow_the_latest_update(web, outage, cli) -> None:
    assert "Отчёты не уходят" in said(twiml(web, region="54", locale="en"))
    before = web.get("/hotline/voice/vxml", params={"region": "54", "locale": "en"}, headers=BEARER)
    assert cli("incident", "update", "INC-1", "--status", "identified",
               "--message", "Отказал сервер БД, переключаем на резервный").exit_code == 0  # fmt: skip
    after_twiml = said(twiml(web, region="54", locale="en"))
    assert "Отказал сервер БД" in after_twiml and "Отчёты не уходят" not in after_twiml
    assert "12:05 Novosibirsk time" in after_twiml and "Status: cause identified, fixing." in after_twiml
    after = web.get("/hotline/voice/vxml", params={"region": "54", "locale": "en"}, headers=BEARER)
    assert after.headers["content-type"].startswith("application/voicexml+xml")
    old, new = ET.fromstring(before.content), ET.fromstring(after.content)
    assert "Отказал сервер БД" in said(new, vxml=True) and "Отказал сервер БД" not in said(old, vxml=True)
    audio = lambda root: next(root.iter(f"{VXML}audio")).get("src")  # noqa: E731
    assert audio(old) != audio(new)  # a new version of the audio


def test_vxml_is_voicexml_2_1_with_a_one_key_menu(web, outage) -> None:
    response = web.get("/hotline/voice/vxml", params={"region": "66"}, headers=BEARER)
    root = ET.fromstring(response.content)
    assert root.tag == f"{VXML}vxml" and root.get("version") == "2.1"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "ru-RU"
    assert all(e.tag.startswith(VXML) for e in root.iter())
    assert [i.text for i in root.iter(f"{VXML}item")] == ["1"]
    submit = next(root.iter(f"{VXML}submit"))
    assert submit.get("namelist") == "choice" and "/hotline/voice/keypad?format=vxml" in submit.get(
        "next", ""
    )
    src = next(root.iter(f"{VXML}audio")).get("src", "")
    wav = web.get(src)  # the platform fetches it without the token
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    assert "Не отправляются отчёты в ФНС." in said(root, vxml=True)  # the fallback text


def test_a_region_without_an_outage_hears_so(web, outage) -> None:
    assert "В вашем регионе, Москва, сейчас сбоев нет." in said(twiml(web, region="77", locale="ru"))
    assert "There is no outage in your region, Moscow, right now." in said(
        twiml(web, region="77", locale="en")
    )


def test_a_known_affected_caller_hears_their_service_in_their_region_and_language(
    web, cli, make_subscriber, engine
) -> None:
    make_subscriber(phone="+79123456789", region="54", locale="en", services=["tax-reporting", "edo"])
    declare_outage(cli)
    text = said(
        twiml(web, region="77", locale="ru", From="+7 912 345-67-89")
    )  # the line is Moscow's, in Russian
    assert text.startswith(
        "Hello! We have an outage right now that affects you too: the Tax e-reporting service."
    )
    assert "12:05 Novosibirsk time" in text and "Москва" not in text
    (call,) = ivr_calls(engine)
    assert call.caller_phone == "+79123456789" and "affected by INC-1" in call.note and call.subscriber_id


def test_play_mode_plays_our_wav_and_markup_in_texts_stays_text(web, cli, engine, config, tmp_path) -> None:
    cli("incident", "declare", "--title", 'Сбой </Say><Dial>+70000000000</Dial> "x"', "--region", "66")
    root = twiml(web, region="66", prompt="play")
    assert root.find("Dial") is None and root.find("Gather/Say") is None
    wav = web.get(root.find("Gather/Play").text)
    assert wav.status_code == 200
    with wave.open(io.BytesIO(wav.content)) as played:
        assert played.getframerate() == 8000
    spoken = twiml(web, region="66")
    assert spoken.find("Dial") is None and "</Say><Dial>+70000000000</Dial>" in said(spoken)  # text, not markup


def test_documents_need_the_token_and_a_wrong_one_is_refused(
    web, outage, config, engine, monkeypatch
) -> None:
    refused = web.post("/hotline/voice/twiml", params={"region": "66"}, data={"From": "+79123456789"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert web.get("/hotline/voice/vxml", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert web.get("/hotline/voice/vxml", auth=("ivr", "nope")).status_code == 401
    monkeypatch.delenv(config.ivr.token_env)
    with serving(config, engine) as off:
        response = off.get("/hotline/voice/twiml", headers=BEARER)
        assert response.status_code == 503 and config.ivr.token_env in response.text


# Audio ----------------------------------------------------------------------------------


def wav(response: httpx.Response) -> tuple[int, int, int, float]:
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate()


@needs_espeak
def test_the_stable_audio_url_serves_telephony_wavs_of_the_latest_announcement(
    web, outage, cli, config
) -> None:
    for rate in (8000, 16000):
        framerate, channels, width, _ = wav(
            web.get("/hotline/voice/audio.wav", params={"region": "66", "rate": rate})
        )
        assert (framerate, channels, width) == (rate, 1, 2)
    quiet = wav(web.get("/hotline/voice/audio.wav", params={"region": "77"}))[3]
    first = web.get("/hotline/voice/audio.wav", params={"region": "66"})
    assert wav(first)[3] > quiet  # an outage takes longer to tell than its absence
    assert web.get("/hotline/voice/audio.wav", params={"region": "66"},
                   headers={"If-None-Match": first.headers["etag"]}).status_code == 304  # fmt: skip
    cli(
        "incident",
        "update",
        "INC-1",
        "--status",
        "identified",
        "--message",
        "Отказал сервер баз данных. Переключаем работу на резервный сервер, это займёт около часа.",
    )
    second = web.get("/hotline/voice/audio.wav", params={"region": "66"})
    assert second.headers["etag"] != first.headers["etag"] and wav(second)[3] > wav(first)[3]
    files = sorted(p.name for p in (config.base_dir / "audio").glob("*.wav"))
    assert f"{first.headers['etag'].strip(chr(34))}.wav" in files and len(files) >= 4  # one file per version


def test_audio_refuses_a_bad_rate_and_a_caller_without_the_token(web, outage) -> None:
    bad = web.get("/hotline/voice/audio.wav", params={"region": "66", "rate": "44100"})
    assert bad.status_code == 400 and "8000, 16000" in bad.text
    assert web.get("/hotline/voice/audio.wav", params={"From": "+79123456789"}).status_code == 401
    assert web.get("/hotline/voice/audio.wav", params={"region": "99"}).status_code == 400
    assert web.get("/hotline/voice/audio/0123456789abcdef0123456789abcdef.wav").status_code == 404
    assert web.get("/hotline/voice/audio/..%2f..%2fconfig.toml.wav").status_code == 404


# The caller lookup ----------------------------------------------------------------------


def lookup(web: httpx.Client, phone: str, headers: dict[str, str] = BEARER) -> httpx.Response:
    return web.get("/api/hotline/caller", params={"phone": phone}, headers=headers)


def test_caller_lookup_answers_affected_not_affected_and_unknown(
    web, cli, make_subscriber, engine
) -> None:
    make_subscriber(phone="+79123456789", region="66", locale="ru")
    make_subscriber(phone="+79120000002", region="66", services=["edo"])
    make_subscriber(phone="+79120000003", region="77", locale="en")
    declare_outage(cli)
    hit = lookup(web, "8 (912) 345-67-89").json()
    assert hit | {"text": "", "audio_url": ""} == {
        "known": True, "region": "66", "region_name": "Свердловская область", "locale": "ru", "affected": True,
        "incidents": ["INC-1"], "text": "", "audio_url": "", "callback_promised": False, "callback_due_at": None,
    }  # fmt: skip
    assert "затрагивает и вас: сервис Налоговая отчётность" in hit["text"]
    spared = lookup(web, "+79120000002").json()
    assert spared["known"] and not spared["affected"] and "ваших сервисов он не касается" in spared["text"]
    moscow = lookup(web, "+79120000003").json()
    assert (moscow["affected"], moscow["locale"]) == (False, "en") and "no outage in your region" in moscow[
        "text"
    ]
    unknown = lookup(web, "+79990000000").json()
    assert (unknown["known"], unknown["region"], unknown["affected"]) == (False, None, False)
    assert wav(web.get(hit["audio_url"]))[0] == 8000  # its personal audio plays without the token
    assert [c.caller_phone for c in ivr_calls(engine)] == ["+79123456789", "+79120000002", "+79120000003",
                                                           "+79990000000"]  # fmt: skip


def test_caller_lookup_refuses_without_the_token(web, outage) -> None:
    assert lookup(web, "+79123456789", headers={}).status_code == 401
    refused = lookup(web, "+79123456789", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "The token is not valid."
    assert lookup(web, "Абонент 1").status_code == 400  # a number, not a name search
    assert lookup(web, "").status_code == 400


def test_caller_lookup_never_returns_another_subscribers_data(web, cli, make_subscriber) -> None:
    caller = make_subscriber(
        phone="+79123456789", region="66", name="Ирина Петрова", email="irina@example.org"
    )
    other = make_subscriber(phone="+79123456780", region="66", name="Олег Сидоров", email="oleg@example.org",
                            external_id="ACC-777")  # fmt: skip
    declare_outage(cli)
    answer = lookup(web, "+79123456789")
    assert answer.json()["affected"] is True
    body = answer.text
    for secret in (other.name, other.email, other.phone, other.external_id, caller.name, caller.email,
                   caller.external_id):  # fmt: skip
        assert secret not in body
    assert lookup(web, "Петрова").status_code == 400 and lookup(web, "irina@example.org").status_code == 400


def test_caller_lookups_are_rate_limited(config, engine, monkeypatch, tmp_path) -> None:
    (tmp_path / "slow").mkdir()
    limited = load_config(
        write_config(tmp_path / "slow", config.notifier.database, ivr={"lookup_rate": "3/minute"})
    )
    monkeypatch.setenv(limited.ivr.token_env, TOKEN)
    with serving(limited, engine) as web:
        assert [lookup(web, "+79990000000").status_code for _ in range(3)] == [200, 200, 200]
        refused = lookup(web, "+79990000000")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert len(ivr_calls(engine)) == 3  # the refused one was not looked up


# The keypad -----------------------------------------------------------------------------


def press(web: httpx.Client, root: ET.Element, digit: str) -> httpx.Response:
    """Post a key to the menu's action URL as Twilio does: no token, the ticket in the URL."""
    action = root.find("Gather").get("action")
    return web.post(action, data={"Digits": digit, "From": "+70000000000"})  # From is not trusted here


def test_pressing_1_promises_a_callback_that_escalates_when_overdue(
    web, cli, make_subscriber, engine, config
) -> None:
    make_subscriber(phone="+79123456789", region="66")
    declare_outage(cli)
    root = twiml(web, region="66", From="+79123456789")
    answer = check_twiml(press(web, root, "1").content)
    assert "перезвоним вам в ближайшие 2 часа" in said(answer) and answer[-1].tag == "Hangup"
    with read_session(engine) as session:
        (callback,) = session.exec(select(Callback)).all()
        call = session.get(Call, callback.call_id)
    assert (call.caller_phone, call.source, callback.owner) == ("+79123456789", "ivr", "callcentre")
    assert call.incident_id is not None and call.subscriber_id is not None
    assert abs((callback.due_at - utcnow()) - timedelta(hours=2)) < timedelta(minutes=1)
    again = said(check_twiml(press(web, twiml(web, region="66", From="+79123456789"), "1").content))
    assert "Мы уже записали вашу просьбу" in again  # no second callback
    assert lookup(web, "+79123456789").json()["callback_promised"] is True
    with write_session(engine) as session:
        assert hotline.queue_escalations(session, config, now=callback.due_at - timedelta(minutes=1)) == 0
        assert hotline.queue_escalations(session, config, now=callback.due_at + timedelta(minutes=1)) >= 1
    with read_session(engine) as session:
        escalations = session.exec(select(Message).where(Message.kind == "escalation")).all()
        assert len(session.exec(select(Callback)).all()) == 1
    assert [m.recipient for m in escalations] == [config.notifier.support_email]


def test_pressing_1_from_a_withheld_number_promises_nothing(web, outage, engine) -> None:
    answer = said(check_twiml(press(web, twiml(web, region="66", From="anonymous"), "1").content))
    assert "не видим ваш номер" in answer
    with read_session(engine) as session:
        assert session.exec(select(Callback)).all() == []


def test_pressing_2_dials_the_operator_and_a_wrong_key_repeats_the_menu(
    config, engine, monkeypatch, tmp_path, outage
):
    (tmp_path / "op").mkdir()
    line = load_config(
        write_config(tmp_path / "op", config.notifier.database, ivr={"operator_number": "+7 800 700-12-35"})
    )
    monkeypatch.setenv(line.ivr.token_env, TOKEN)
    with serving(line, engine) as web:
        root = twiml(web, region="66")
        assert "Чтобы поговорить с оператором, нажмите 2." in said(root)
        dial = check_twiml(press(web, root, "2").content)
        assert dial.find("Dial").text == "+78007001235"
        wrong = check_twiml(press(web, root, "7").content)
        assert "Не удалось распознать" in said(wrong)
        menu = web.post(wrong.find("Redirect").text)  # the ticket lets Twilio come back without the token
        assert "Отчёты не уходят" in said(check_twiml(menu.content))
        vxml = ET.fromstring(web.get("/hotline/voice/vxml", params={"region": "66"}, headers=BEARER).content)
        assert [i.text for i in vxml.iter(f"{VXML}item")] == ["1", "2"]
        transfer = ET.fromstring(
            web.post(next(vxml.iter(f"{VXML}submit")).get("next"), data={"choice": "2"}).content
        )
        assert next(transfer.iter(f"{VXML}transfer")).get("dest") == "tel:+78007001235"
        as_json = web.post(
            "/hotline/voice/keypad", params={"format": "json"}, data={"Digits": "2"}, headers=BEARER
        )
        assert as_json.json()["action"] == "operator" and as_json.json()["number"] == "+78007001235"


def test_a_forged_or_expired_ticket_is_refused(web, outage) -> None:
    action = twiml(web, region="66", From="+79123456789").find("Gather").get("action")
    query = {k: v[0] for k, v in parse_qs(urlsplit(action).query).items()}
    forged = web.post(
        "/hotline/voice/keypad", params={**query, "caller": "+79120000001"}, data={"Digits": "1"}
    )
    assert forged.status_code == 401
    expired = web.post("/hotline/voice/keypad", params={**query, "exp": "1000"}, data={"Digits": "1"})
    assert expired.status_code == 401


# FreeSWITCH mod_httapi (tags and attributes from mod_httapi's own documentation)
HTTAPI = {
    "document": ({"type"}, {"params", "variables", "work"}),
    "work": (set(), {"playback", "hangup", "dial", "continue"}),
    "playback": ({"file", "name", "error-file", "action", "temp-action", "digit-timeout", "input-timeout", "loops"},
                 {"bind"}),
    "bind": ({"action", "strip"}, set()),
    "hangup": ({"cause", "action", "temp-action"}, set()),
    "dial": ({"context", "dialplan", "caller-id-name", "caller-id-number", "action", "temp-action"}, set()),
    "continue": ({"action", "temp-action"}, set()),
}  # fmt: skip


def check_httapi(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "document" and root.get("type") == "xml/freeswitch-httapi"
    for element in root.iter():
        attributes, children = HTTAPI[element.tag]
        assert set(element.attrib) <= attributes and {c.tag for c in element} <= children, element.tag
    return root


def test_freeswitch_httapi_plays_the_callers_wav_and_binds_one_key(web, cli, make_subscriber, engine) -> None:
    make_subscriber(phone="+79123456789", region="66")
    declare_outage(cli)
    response = web.post("/hotline/voice/httapi", data={"region": "66", "From": "+79123456789", "session_id": "s1"},
                        auth=("ivr", TOKEN))  # fmt: skip
    play = check_httapi(response.content).find("work/playback")
    assert (play.get("name"), play.find("bind").text, play.get("digit-timeout")) == ("Digits", "~[1]", "6000")
    assert wav(web.get(play.get("file")))[0] == 8000
    answer = check_httapi(web.post(play.get("action"), data={"Digits": "1", "session_id": "s1"}).content)
    assert answer.find("work/hangup") is not None and wav(web.get(answer.find("work/playback").get("file")))[3] > 1
    with read_session(engine) as session:
        assert len(session.exec(select(Callback)).all()) == 1


@needs_espeak
def test_the_stable_url_also_ends_in_wav_for_players_that_go_by_the_name(web, outage) -> None:
    by_path = web.get("/hotline/voice/regions/66/ru/16000.wav")
    by_query = web.get("/hotline/voice/audio.wav", params={"region": "66", "locale": "ru", "rate": "16000"})
    assert wav(by_path)[0] == 16000 and by_path.headers["etag"] == by_query.headers["etag"]
    assert "max-age=0" in by_path.headers["cache-control"]
    assert web.get("/hotline/voice/regions/99/ru/8000.wav").status_code == 400


# The README's Asterisk AGI script, run as Asterisk would run it ---------------------------


def readme_agi() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(#!/usr/bin/env python3\n\"\"\"Asterisk AGI.*?)```", readme, re.DOTALL)
    assert match, "the README's Asterisk section lost its AGI script"
    return match.group(1)


def run_agi(url: str, tmp_path: Path, caller: str, answers: list[str]) -> list[str]:
    """Start the script with an AGI environment on stdin and Asterisk's replies after it."""
    script = tmp_path / "notifier-ivr.agi"
    script.write_text(readme_agi(), encoding="utf-8")
    agi_env = f"agi_request: notifier-ivr.agi\nagi_callerid: {caller}\nagi_arg_1: 66\nagi_arg_2: ru\n\n"
    done = subprocess.run(
        [sys.executable, str(script)], input=agi_env + "".join(a + "\n" for a in answers), capture_output=True,
        text=True, timeout=120, env={**os.environ, "NOTIFIER_URL": url, "NOTIFIER_IVR_TOKEN": TOKEN,
                                     "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("notifier-*.wav"))  # it cleans up after itself
    return done.stdout.splitlines()


@needs_espeak
def test_the_readmes_asterisk_agi_plays_the_callers_audio_and_records_press_1(
    config, engine, cli, make_subscriber, monkeypatch, tmp_path
) -> None:
    make_subscriber(phone="+79120003986", region="66")
    declare_outage(cli)
    monkeypatch.setenv(config.ivr.token_env, TOKEN)
    with running(create_app(config, engine)) as url:
        said_ = run_agi(url, tmp_path, "+79120003986", ["200 result=1", "200 result=0", "200 result=1"])
        assert re.fullmatch(r"GET DATA \S+/notifier-\w+ 6000 1", said_[0])
        assert said_[1].startswith("STREAM FILE ") and said_[2] == "SET VARIABLE NOTIFIER_ACTION callback"
        silent = run_agi(url, tmp_path, "unknown", ["200 result= (timeout)", "200 result=1"])
        assert silent[-1] == "SET VARIABLE NOTIFIER_ACTION none"
    with read_session(engine) as session:
        (callback,) = session.exec(select(Callback)).all()
        assert session.get(Call, callback.call_id).caller_phone == "+79120003986"
    assert [c.note for c in ivr_calls(engine)][0] == "Phone line, caller lookup: affected by INC-1"
