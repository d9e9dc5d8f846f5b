"""What the phone line says: the current hotline announcement for a region and language, made
fit to be heard, with the personal lines for a caller the line recognised.

Owns turning the operator's script (``hotline.script``: the ``hotline`` template, times in the
region's local time, the latest update of each open incident) into spoken sentences: no
quotes, links or e-mail addresses, abbreviated durations written out, a sentence in the other
language marked as such so that it is pronounced in it; a region with nothing wrong hears so.
It does not synthesise audio (``voice.audio``), build telephony documents
(``voice.documents``) or look callers up (``voice.line``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from notifier import incidents
from notifier.config import Config
from notifier.hotline import ScriptEntry, script
from notifier.rendering import Renderer
from notifier.voice.phrases import phrase, spoken_span
from notifier.wording import ru_plural, services_phrase

# BCP 47 tags the telephony documents carry, per language.
LANGUAGE_TAGS = {"ru": "ru-RU", "en": "en-GB"}


@dataclass(frozen=True)
class Segment:
    """Consecutive sentences in one language."""

    lang: str  # "ru" or "en"
    text: str


@dataclass(frozen=True)
class Speech:
    """What the line says to one caller now: the announcement (and personal lines), then the menu."""

    locale: str
    segments: tuple[Segment, ...]
    menu: tuple[Segment, ...] = ()
    incidents: tuple[str, ...] = ()  # refs of the incidents it speaks about
    region: str | None = None

    @property
    def spoken(self) -> tuple[Segment, ...]:
        return self.segments + self.menu

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.spoken)


@dataclass(frozen=True)
class Listener:
    """Who is listening, as far as the phone line knows; built by ``voice.line``."""

    locale: str
    region: str | None = None
    known: bool = False
    affecting: dict[str, list[str]] = field(default_factory=dict)  # open incident ref -> services hit
    callback_in: float | None = None  # seconds until a promised callback is due (< 0: late)


# Making text fit to be heard ------------------------------------------------------------

_LINKS = re.compile(r"(https?://|www\.)\S+|[\w.+-]+@[\w-]+(\.[\w-]+)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_QUOTES = re.compile(r"[«»„“”\"]")
_YEAR_RU = re.compile(r"(\d{4}) г\.")
_DURATION = {
    "ru": (re.compile(r"(\d+) (дн\.|ч|мин)(?=[\s,.;:)]|$)"), {"дн.": ("день", "дня", "дней"),
           "ч": ("час", "часа", "часов"), "мин": ("минута", "минуты", "минут")}),
    "en": (re.compile(r"(\d+) (d|h|min)\b"), {"d": ("day", "days", "days"), "h": ("hour", "hours", "hours"),
           "min": ("minute", "minutes", "minutes")}),
}  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


def _durations(text: str, locale: str) -> str:
    pattern, words = _DURATION[locale]

    def spell(match: re.Match[str]) -> str:
        n = int(match.group(1))
        one, few, many = words[match.group(2)]
        return f"{n} {ru_plural(n, one, few, many) if locale == 'ru' else (one if n == 1 else many)}"

    return pattern.sub(spell, text)


def _language(sentence: str, locale: str) -> str:
    cyrillic, latin = len(_CYRILLIC.findall(sentence)), len(_LATIN.findall(sentence))
    if locale == "en" and cyrillic > latin:
        return "ru"
    if locale == "ru" and latin > cyrillic:
        return "en"
    return locale


def sentences(text: str, locale: str) -> list[tuple[str, str]]:
    """``(language, sentence)`` pairs of ``text`` as it should be heard.

    Links and e-mail addresses are dropped (nobody can write them down from a voice), quotes
    removed, brackets become pauses, ``5 ч 7 мин`` becomes ``5 часов 7 минут``; each line ends
    as a sentence. A sentence mostly in the other alphabet (an incident title typed in Russian,
    read on the English line) is tagged with its own language.
    """
    text = _CONTROL.sub(" ", _LINKS.sub("", text))
    text = _QUOTES.sub("", text).replace("(", ", ").replace(")", "")
    if locale == "ru":
        text = _YEAR_RU.sub(r"\1 года", text)
    text = _durations(text, locale)
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = " ".join(line.split()).strip(" ,;")
        line = re.sub(r"\s+([,.;:!?])", r"\1", line)
        if not line or not any(ch.isalnum() for ch in line):
            continue
        if line[-1] not in ".!?":
            line = line.rstrip(":") + "."
        out += [(_language(s, locale), s) for s in _SENTENCE_END.split(line) if s]
    return out


def segments(pairs: list[tuple[str, str]]) -> tuple[Segment, ...]:
    """Adjacent sentences in the same language joined into one segment."""
    merged: list[Segment] = []
    for lang, sentence in pairs:
        if merged and merged[-1].lang == lang:
            merged[-1] = Segment(lang, f"{merged[-1].text} {sentence}")
        else:
            merged.append(Segment(lang, sentence))
    return tuple(merged)


def said(text: str, locale: str) -> tuple[Segment, ...]:
    """``text`` as segments ready to be spoken."""
    return segments(sentences(text, locale))


# What the line says ---------------------------------------------------------------------


def _paragraphs(entry: ScriptEntry, locale: str, heard: set[str]) -> list[tuple[str, str]]:
    """The entry's text, each paragraph said once in a call (the header and closing line that
    several announcements share are not repeated)."""
    out: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", entry.text):
        key = " ".join(paragraph.split())
        if key and key not in heard:
            heard.add(key)
            out += sentences(paragraph, locale)
    return out


def _personal(listener: Listener, here: list[ScriptEntry]) -> list[tuple[str, str]]:
    """A known caller hears first whether the outage hits them, and about their callback."""
    locale = listener.locale
    pairs: list[tuple[str, str]] = []
    if listener.affecting:
        names = list(dict.fromkeys(n for names in listener.affecting.values() for n in names))
        pairs += sentences(phrase("affects_you", locale, services=services_phrase(names, locale)), locale)
    elif listener.known and here:
        pairs += sentences(phrase("spares_you", locale), locale)
    if listener.callback_in is not None and listener.callback_in < 0:
        pairs += sentences(phrase("callback_late", locale), locale)
    elif listener.callback_in is not None:
        within = spoken_span(listener.callback_in, locale)
        pairs += sentences(phrase("callback_due", locale, within=within), locale)
    return pairs


def announcement(
    session: Session, config: Config, listener: Listener, now: datetime, *, renderer: Renderer,
    menu: tuple[str, ...] = (),
) -> Speech:  # fmt: skip
    """What the line says right now to ``listener``: for a known caller, first whether an open
    incident hits them and about their promised callback; then every open incident in their
    region (all open incidents when the region is unknown, and always those that hit them), each
    as its hotline announcement; or that nothing is wrong there.

    ``menu`` names the keypad choices offered (``"callback"``, ``"operator"``), said last.
    """
    locale, region = listener.locale, listener.region
    entries = script(session, config, None, region, locale, now, renderer=renderer)
    here = [e for e in entries if region is None or e.affects_region or e.incident in listener.affecting]
    company = config.notifier.company.get(locale)
    # The announcement itself names the company: then a plain hello is enough.
    pairs = sentences(
        phrase("hello", locale) if here else phrase("greeting", locale, company=company), locale
    )
    pairs += _personal(listener, here)
    heard: set[str] = set()
    for entry in here:
        pairs += _paragraphs(entry, locale, heard)
    if not here and region is None:
        pairs += sentences(phrase("no_outage", locale), locale)
    elif not here and region is not None:
        name = config.regions[region].name.get(locale)
        pairs += sentences(phrase("no_outage_here", locale, region=name), locale)
        elsewhere = _other_regions(session, config, region, locale)
        if elsewhere:
            pairs += sentences(phrase("elsewhere", locale, regions=", ".join(elsewhere)), locale)
    return Speech(
        locale=locale, segments=segments(pairs), menu=menu_said(menu, locale),
        incidents=tuple(e.incident for e in here), region=region,
    )  # fmt: skip


def _other_regions(session: Session, config: Config, region: str, locale: str) -> list[str]:
    """Names of the regions open incidents hit (none of them ``region``), in config order."""
    hit = {code for incident in incidents.list_incidents(session, open_only=True, limit=100)
           for code in incident.regions}  # fmt: skip
    return [r.name.get(locale) for code, r in config.regions.items() if code in hit and code != region]


def menu_said(menu: tuple[str, ...], locale: str) -> tuple[Segment, ...]:
    """The keypad choices as said: ``callback`` (press 1), ``operator`` (press 2)."""
    pairs: list[tuple[str, str]] = []
    for choice in menu:
        pairs += sentences(phrase(f"menu_{choice}", locale), locale)
    return segments(pairs)


def reply(name: str, locale: str, **values: str) -> Speech:
    """One fixed answer of the line (after a key press), as speech."""
    return Speech(locale=locale, segments=said(phrase(name, locale, **values), locale))
