"""The phone line: what the hotline's telephone system plays, and what its keypad does.

One module per concern; this package root only re-exports the public names:

* ``speech``: the current hotline announcement for a region and language, made fit to be
  heard, with the personal lines for a recognised caller (``announcement``, ``Speech``);
* ``phrases``: the line's own few fixed sentences in ru and en;
* ``documents``: TwiML, VoiceXML 2.1 and FreeSWITCH mod_httapi built with ``xml.etree``;
* ``audio``: espeak-ng synthesis, sox resampling to 8 or 16 kHz, the WAV cache;
* ``line``: who is calling (by their own number only), the caller lookup's answer, the
  lookups logged as hotline calls (source ``ivr``), "press 1" callbacks, signed call tickets.

Functions take the Session and Config they need; nothing here reads the clock when a
``now`` is given, and nothing knows HTTP (``notifier.web.ivr`` does).
"""

from __future__ import annotations

from notifier.voice.audio import RATES, AudioCache, AudioNotFound, audio_key, ssml, synthesise
from notifier.voice.documents import (
    Menu,
    dial_number,
    httapi_menu,
    httapi_reply,
    twiml_menu,
    twiml_reply,
    vxml_menu,
    vxml_reply,
)
from notifier.voice.line import (
    Caller,
    answer,
    check_locale,
    check_region,
    check_ticket,
    identify,
    keypad_reply,
    log_lookup,
    make_ticket,
    menu_choices,
    request_callback,
    summary,
    usable_phone,
)
from notifier.voice.speech import LANGUAGE_TAGS, Listener, Segment, Speech, announcement, reply

__all__ = [
    "LANGUAGE_TAGS", "RATES", "AudioCache", "AudioNotFound", "Caller", "Listener", "Menu", "Segment", "Speech",
    "announcement", "answer", "audio_key", "dial_number", "httapi_menu", "httapi_reply", "check_locale", "check_region", "check_ticket", "identify",
    "keypad_reply", "log_lookup", "make_ticket", "menu_choices", "reply", "request_callback", "ssml",
    "summary", "synthesise", "twiml_menu", "twiml_reply", "usable_phone", "vxml_menu", "vxml_reply",
]  # fmt: skip
