"""Which language's text each reader gets: an incident's texts per language, and who lacks one.

Owns the translations of an incident (``title``, ``cause``, ``measures``) and of its public
updates (``message``): the ``[notifier].default_locale`` text lives in the row's own column,
every other language in its ``translations`` JSON (``{"en": {"title": …}}``), so a third
language is data, not a schema change. It answers "the text of this row for this reader"
(their language's, else the default one), "which languages of this audience have no text"
(``Untranslated``: "37 English readers will get the Russian text: add --title-en") and
"which languages' apologies are ready" (the rest are held unless ``[mailing].fallback_locale``
says to send the default text). Option names (``--title-en``) are the same words the console
form and the alert webhook use (``title_en``). It queues, renders and prints nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from notifier import characters
from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.models import AudienceMember, Subscriber

INCIDENT_FIELDS = ("title", "cause", "measures")
UPDATE_FIELDS = ("message",)
MULTILINE = {"message", "cause", "measures"}
APOLOGY_FIELDS = ("title", "cause", "measures")  # what an apology in a language needs
NAMES = {"ru": {"ru": "русский", "en": "Russian"}, "en": {"ru": "английский", "en": "English"}}

Texts = dict[str, dict[str, str]]  # locale -> field -> text


def language_name(locale: str, in_locale: str = "en") -> str:
    """``English`` / ``английский``: a language as people call it."""
    return NAMES.get(locale, {}).get(in_locale, locale)


def option(field: str, locale: str) -> str:
    """``--title-en``: the command-line option (and, as ``title_en``, the form field)."""
    return f"--{field}-{locale}"


def text(row: Any, field: str, locale: str) -> str:
    """``row``'s ``field`` in ``locale`` if it has one, else its default-language text."""
    translated = ((getattr(row, "translations", None) or {}).get(locale) or {}).get(field)
    return translated or getattr(row, field) or ""


def has_text(row: Any, field: str, locale: str, default_locale: str) -> bool:
    """Whether ``row`` has ``field`` written in ``locale`` (the default text counts for its own)."""
    if locale == default_locale:
        return bool(getattr(row, field))
    return bool(((getattr(row, "translations", None) or {}).get(locale) or {}).get(field))


def check(config: Config, given: Mapping[str, Mapping[str, str | None]] | None, fields: Iterable[str]) -> Texts:
    """The translations to store, checked like the default texts (control and direction
    characters refused, invisible ones stripped); empty ones dropped. ``given`` is
    ``{locale: {field: text}}``; the default locale and unknown languages are refused."""
    fields = tuple(fields)
    result: Texts = {}
    for locale, values in (given or {}).items():
        wanted = {f: v for f, v in values.items() if v is not None}
        if not wanted:
            continue
        if locale not in LOCALES:
            raise UsageError(f"unknown language {locale!r} (known: {', '.join(LOCALES)})")
        if locale == config.notifier.default_locale:
            raise UsageError(
                f"{language_name(locale)} is the default language ([notifier].default_locale): give its text "
                f"as --{next(iter(wanted))}, not {option(next(iter(wanted)), locale)}"
            )
        for field, value in wanted.items():
            if field not in fields:
                raise UsageError(f"{option(field, locale)} is not a text of this step")
            clean = characters.strip_invisible(value.strip())
            problem = characters.problem(clean, multiline=field in MULTILINE)
            if problem:
                raise UsageError(f"{option(field, locale)} {problem}; remove it")
            if clean:
                result.setdefault(locale, {})[field] = clean
    return result


def merged(existing: Texts | None, new: Texts) -> Texts | None:
    """``existing`` with ``new``'s texts written over it (a fresh dict: JSON columns see the change)."""
    result = {locale: dict(values) for locale, values in (existing or {}).items()}
    for locale, values in new.items():
        result.setdefault(locale, {}).update(values)
    return result or None


def readers(session: Session, incident_id: int) -> dict[str, int]:
    """Active audience members of an incident by their language."""
    rows = session.execute(
        select(Subscriber.locale, func.count())
        .select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(AudienceMember.incident_id == incident_id, Subscriber.status == "active")
        .group_by(Subscriber.locale)
    ).all()
    return {locale: n for locale, n in rows}


@dataclass(frozen=True)
class Untranslated:
    """Readers in one language who lack some of a step's texts in it."""

    locale: str
    readers: int
    options: tuple[str, ...]  # ("--title-en", "--message-en")
    held: bool = False  # their apology waits for the texts (no [mailing].fallback_locale)
    default_locale: str = "ru"

    def notice(self) -> str:
        """``37 English readers will get the Russian text: add --title-en``."""
        who = f"{self.readers} {language_name(self.locale)} reader{'s' if self.readers != 1 else ''}"
        add = " ".join(self.options)
        if self.held:
            return f"{who}: their apology is HELD until it has their language: add {add} (notifier incident edit)"
        return f"{who} will get the {language_name(self.default_locale)} text: add {add}"

    def as_dict(self) -> dict[str, Any]:
        return {"locale": self.locale, "readers": self.readers, "options": list(self.options), "held": self.held}


def untranslated(
    config: Config, counts: Mapping[str, int], rows: Iterable[tuple[Any, Iterable[str]]], *, held: bool = False
) -> list[Untranslated]:
    """For each language of the audience but the default one: the texts of ``rows`` (each a row
    and the fields it needs) that it lacks, with how many readers it has."""
    default = config.notifier.default_locale
    found = []
    rows = [(row, tuple(fields)) for row, fields in rows]
    for locale, n in sorted(counts.items()):
        if locale == default or not n or locale not in LOCALES:
            continue
        missing = tuple(
            option(field, locale) for row, fields in rows for field in fields
            if getattr(row, field, "") and not has_text(row, field, locale, default)
        )  # fmt: skip
        if missing:
            found.append(Untranslated(locale, n, missing, held, default))
    return found


def apology_gaps(config: Config, incident: Any, counts: Mapping[str, int]) -> list[Untranslated]:
    """The languages whose apology is not ready (title, cause or measures missing in it); held
    unless ``[mailing].fallback_locale`` sends them the default text instead."""
    hold = not config.mailing.fallback_locale
    return untranslated(config, counts, [(incident, APOLOGY_FIELDS)], held=hold)


def ready_locales(config: Config, incident: Any, counts: Mapping[str, int]) -> list[str]:
    """The languages whose apologies may be queued now."""
    waiting = {gap.locale for gap in apology_gaps(config, incident, counts) if gap.held}
    return [locale for locale in LOCALES if locale not in waiting]
