"""Telephony documents: TwiML (Twilio and the platforms that copy it), VoiceXML 2.1 and
FreeSWITCH's mod_httapi.

Owns the shape of what a telephony platform is handed: the announcement spoken by the
platform's own voice (``<Say language="ru-RU">``, a VoiceXML ``<prompt>``) or played from our
WAV (``<Play>``, ``<audio src>`` with the text as fallback; mod_httapi always plays ours),
inside a one-key menu that posts to the keypad URL; and the short replies after a key press
(a goodbye, a transfer to an operator, the menu again). Documents are built with ``xml.etree``: text never becomes
markup. It does not decide what is said (``voice.speech``) nor what a key does
(``voice.line``). Only elements and attributes Twilio documents are used in TwiML.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from notifier.voice.speech import LANGUAGE_TAGS, Speech

VXML_NS = "http://www.w3.org/2001/vxml"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SAY_LIMIT = 3000  # characters per <Say>; Twilio's limit is about 4,000


@dataclass(frozen=True)
class Menu:
    """The keypad menu a document offers: where the key goes, which keys mean something."""

    action: str  # the keypad URL
    digits: tuple[str, ...]  # "1" (callback), "2" (operator)
    timeout: int  # seconds to wait for a key


def dial_number(number: str) -> str:
    """``+7 800 700-12-35`` -> ``+78007001235``: what a platform dials."""
    return re.sub(r"[^\d+]", "", number)


def _chunks(text: str) -> list[str]:
    """``text`` cut at sentence ends into pieces of at most SAY_LIMIT characters."""
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if pieces and len(pieces[-1]) + 1 + len(sentence) <= SAY_LIMIT:
            pieces[-1] += " " + sentence
        else:
            pieces.append(sentence[:SAY_LIMIT])
    return pieces


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


# TwiML ----------------------------------------------------------------------------------


def _twiml_speak(parent: ET.Element, speech: Speech, audio_url: str | None, voices: dict[str, str]) -> None:
    if audio_url:
        ET.SubElement(parent, "Play").text = audio_url
        return
    for segment in speech.spoken:
        attributes = {"language": LANGUAGE_TAGS[segment.lang]}
        if voices.get(segment.lang):
            attributes["voice"] = voices[segment.lang]
        for piece in _chunks(segment.text):
            ET.SubElement(parent, "Say", attributes).text = piece


def twiml_menu(
    speech: Speech, menu: Menu, goodbye: Speech, *, audio_url: str | None = None,
    goodbye_url: str | None = None, voices: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    """The announcement inside a one-key ``<Gather>``; a goodbye and ``<Hangup>`` if no key comes.

    ``audio_url`` (and ``goodbye_url``): ``<Play>`` our WAVs instead of ``<Say>``.
    """
    voices = voices or {}
    root = ET.Element("Response")
    gather = ET.SubElement(root, "Gather", {"input": "dtmf", "numDigits": "1", "timeout": str(menu.timeout),
                                            "action": menu.action, "method": "POST"})  # fmt: skip
    _twiml_speak(gather, speech, audio_url, voices)
    _twiml_speak(root, goodbye, goodbye_url, voices)
    ET.SubElement(root, "Hangup")
    return _document(root)


def twiml_reply(
    speech: Speech, *, audio_url: str | None = None, dial: str | None = None, redirect: str | None = None,
    voices: dict[str, str] | None = None,
) -> bytes:  # fmt: skip
    """A short answer, then: ``<Dial>`` the operator, ``<Redirect>`` to the menu, or ``<Hangup>``."""
    root = ET.Element("Response")
    _twiml_speak(root, speech, audio_url, voices or {})
    if dial:
        ET.SubElement(root, "Dial").text = dial_number(dial)
    elif redirect:
        ET.SubElement(root, "Redirect", {"method": "POST"}).text = redirect
    else:
        ET.SubElement(root, "Hangup")
    return _document(root)


# VoiceXML 2.1 ---------------------------------------------------------------------------


def _v(tag: str) -> str:
    return f"{{{VXML_NS}}}{tag}"


def _vxml_root(speech: Speech) -> ET.Element:
    ET.register_namespace("", VXML_NS)
    return ET.Element(_v("vxml"), {"version": "2.1", _XML_LANG: LANGUAGE_TAGS[speech.locale]})


def _prompt(parent: ET.Element, speech: Speech, audio_url: str | None, **attributes: str) -> None:
    """A ``<prompt>``: our WAV when given (the text inside ``<audio>`` is its fallback), else text."""
    prompt = ET.SubElement(parent, _v("prompt"), attributes)
    holder = ET.SubElement(prompt, _v("audio"), {"src": audio_url}) if audio_url else prompt
    for segment in speech.spoken:
        ET.SubElement(holder, _v("s"), {_XML_LANG: LANGUAGE_TAGS[segment.lang]}).text = segment.text


def vxml_menu(
    speech: Speech, menu: Menu, goodbye: Speech, not_understood: Speech, *, audio_url: str | None = None,
) -> bytes:  # fmt: skip
    """A VoiceXML 2.1 form: the announcement, a one-key DTMF field submitted to the keypad URL
    as ``choice``; silence says goodbye, a wrong key says so and asks again."""
    root = _vxml_root(speech)
    form = ET.SubElement(root, _v("form"), {"id": "announcement"})
    field = ET.SubElement(form, _v("field"), {"name": "choice"})
    grammar = ET.SubElement(field, _v("grammar"), {"mode": "dtmf", "version": "1.0", "root": "choice"})
    rule = ET.SubElement(grammar, _v("rule"), {"id": "choice", "scope": "public"})
    one_of = ET.SubElement(rule, _v("one-of"))
    for digit in menu.digits:
        ET.SubElement(one_of, _v("item")).text = digit
    ET.SubElement(field, _v("property"), {"name": "timeout", "value": f"{menu.timeout}s"})
    _prompt(field, speech, audio_url, bargein="true")
    noinput = ET.SubElement(field, _v("noinput"))
    _prompt(noinput, goodbye, None)
    ET.SubElement(noinput, _v("exit"))
    nomatch = ET.SubElement(field, _v("nomatch"))
    _prompt(nomatch, not_understood, None)
    ET.SubElement(nomatch, _v("reprompt"))
    filled = ET.SubElement(field, _v("filled"))
    ET.SubElement(filled, _v("submit"), {"next": menu.action, "method": "post", "namelist": "choice"})
    return _document(root)


def vxml_reply(
    speech: Speech, *, audio_url: str | None = None, transfer: str | None = None, goto: str | None = None,
) -> bytes:  # fmt: skip
    """A short answer, then: a blind ``<transfer>`` to the operator, ``<goto>`` the menu, or ``<exit>``."""
    root = _vxml_root(speech)
    form = ET.SubElement(root, _v("form"), {"id": "reply"})
    block = ET.SubElement(form, _v("block"))
    _prompt(block, speech, audio_url)
    if transfer:
        ET.SubElement(form, _v("transfer"), {"name": "operator", "dest": f"tel:{dial_number(transfer)}",
                                             "type": "blind"})  # fmt: skip
    elif goto:
        ET.SubElement(block, _v("goto"), {"next": goto})
    else:
        ET.SubElement(block, _v("exit"))
    return _document(root)


# FreeSWITCH mod_httapi ------------------------------------------------------------------

HTTAPI_TYPE = "xml/freeswitch-httapi"


def httapi_menu(menu: Menu, audio_url: str, goodbye_url: str) -> bytes:
    """A mod_httapi document: play our WAV and bind one key (posted as ``Digits`` to the keypad
    URL); without a key, the goodbye and a hang-up."""
    root = ET.Element("document", {"type": HTTAPI_TYPE})
    work = ET.SubElement(root, "work")
    play = ET.SubElement(work, "playback", {"name": "Digits", "file": audio_url, "action": menu.action,
                                            "digit-timeout": str(menu.timeout * 1000), "loops": "1"})  # fmt: skip
    ET.SubElement(play, "bind", {"strip": "#"}).text = "~[" + "".join(menu.digits) + "]"
    ET.SubElement(work, "playback", {"file": goodbye_url})
    ET.SubElement(work, "hangup")
    return _document(root)


def httapi_reply(audio_url: str, *, dial: str | None = None, redirect: str | None = None) -> bytes:
    """A short answer, then: ``<dial>`` the operator, ``<continue>`` to the menu, or ``<hangup>``."""
    root = ET.Element("document", {"type": HTTAPI_TYPE})
    work = ET.SubElement(root, "work")
    ET.SubElement(work, "playback", {"file": audio_url})
    if dial:
        ET.SubElement(work, "dial").text = dial_number(dial)
    elif redirect:
        ET.SubElement(work, "continue", {"action": redirect})
    else:
        ET.SubElement(work, "hangup")
    return _document(root)
