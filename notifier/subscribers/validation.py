"""The rules one subscriber row must satisfy, and the normal forms it is stored in.

Owns the checks (no control characters, no direction-changing invisible characters — the
rules of ``notifier.characters`` —, no non-UTF-8 bytes, field lengths, an e-mail or a
phone, a known region, known services, a supported locale, channels among e-mail and SMS
with their addresses; zero-width characters are stripped), the normalisation of e-mail
addresses (email_validator's rules, no DNS) and phone numbers (E.164), and the key a clean
row is matched to a stored subscriber by. It reads nothing and writes nothing: the import
(``importing``) and one-at-a-time additions (``lookup``) apply these rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from email_validator import EmailNotValidError, validate_email

from notifier import characters
from notifier.config import LOCALES, Config
from notifier.subscribers import phones

COLUMNS: tuple[str, ...] = ("external_id", "name", "email", "phone", "region", "services", "locale")
OPTIONAL_COLUMNS: tuple[str, ...] = ("channels",)  # "email;sms"; absent or empty: by [sms] in the config
CHANNELS: tuple[str, ...] = ("email", "sms")
# What a clean row holds, in this order (``RowRules`` returns tuples of them, ``clean`` a dict).
STORED: tuple[str, ...] = ("external_id", "name", "name_key", "email", "email_key", "phone", "region", "services",
                           "locale")  # fmt: skip
MAX_NAME = 200
MAX_EXTERNAL_ID = 100
MAX_FIELD = 1000
_NOT_UTF8 = re.compile(r"[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape
# Plain ASCII dot-atom addresses: email_validator leaves the local part as it is, so only the
# domain needs its (slow) verdict, which is cached. Anything else goes to email_validator whole.
_PLAIN_EMAIL = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@([A-Za-z0-9.-]+)"
)


class RowError(ValueError):
    """Why one row cannot be imported; ``str()`` is the reason shown to the user."""


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain, or EmailNotValidError, as email_validator judges it."""
    return validate_email("x@" + domain, check_deliverability=False).domain


_DOMAINS: dict[str, str] = {}  # the valid ones of _domain, for the quickest lookup (bounded)


def normalise_email(raw: str) -> str:
    """The normalised form of an e-mail address (email_validator's rules, no DNS lookups)."""
    match = _PLAIN_EMAIL.fullmatch(raw)
    try:
        if match and len(match.group(1)) <= 64 and len(raw) <= 254:
            local, domain = match.groups()
            normal = _DOMAINS.get(domain)
            if normal is None:
                normal = _domain(domain)
                if len(_DOMAINS) < 4096:
                    _DOMAINS[domain] = normal
            return raw if normal == domain else f"{local}@{normal}"
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowError(f"e-mail {raw!r} is not valid: {exc}") from None


def normalise_phone(raw: str, country: str) -> str:
    """A phone number in any common format -> E.164 (``8 912 …`` is read as Russia's trunk prefix)."""
    try:
        return phones.normalise_phone(raw, country)
    except phones.PhoneError as exc:
        what = "a phone number" if exc.not_a_number else "a valid number"
        raise RowError(f"phone {raw!r} is not {what}") from None


def _services(raw: str, known: Mapping[str, Any]) -> str:
    codes = list(dict.fromkeys(code.strip() for code in raw.split(";") if code.strip()))
    for code in codes:
        if code not in known:
            raise RowError(f"unknown service {code!r} (known: {', '.join(sorted(known))})")
    return ";" + ";".join(codes) + ";" if codes else ""


def _channels(raw: str, email: str | None, phone: str | None) -> str:
    """``email;sms`` -> ``;email;sms;``; each named channel needs its address."""
    named = {code.strip().lower() for code in raw.replace(",", ";").split(";") if code.strip()}
    unknown = sorted(named - set(CHANNELS))
    if unknown:
        raise RowError(f"unknown channel {unknown[0]!r} (known: {', '.join(CHANNELS)})")
    if "email" in named and not email:
        raise RowError("channels name email, but there is no e-mail address")
    if "sms" in named and not phone:
        raise RowError("channels name sms, but there is no phone")
    codes = [code for code in CHANNELS if code in named]
    return ";" + ";".join(codes) + ";" if codes else ""


class RowRules:
    """The rules, prepared once for one header and config: a row's fields (in the header's order)
    -> the ``STORED`` values (and ``channels`` when the header has it) as a tuple, or RowError.

    What is the same for many rows (a services list, a locale) is judged once and remembered,
    in bounded dicts; everything else is checked on every row, in the order the reasons are
    given: characters, lengths, e-mail or phone, e-mail, phone, region, locale, services, channels.
    """

    def __init__(self, header: Sequence[str], config: Config) -> None:
        """``header``: the file's columns, every one of ``COLUMNS`` among them, perhaps ``channels``."""
        self.header = list(header)
        self.has_channels = "channels" in self.header
        wanted = COLUMNS + OPTIONAL_COLUMNS if self.has_channels else COLUMNS
        self._pick = itemgetter(*(self.header.index(column) for column in wanted))
        self._regions = config.regions
        self._known_services = config.services
        self._country = config.notifier.default_country
        self._default_locale = config.notifier.default_locale
        self._services: dict[str, str] = {}
        self._locales: dict[str, str] = {}

    def __call__(self, fields: Sequence[str]) -> tuple[Any, ...]:
        everything = "".join(fields)
        if not characters.plain(everything):
            fields = _checked_characters(self.header, fields)
            everything = "".join(fields)
        picked = self._pick(fields)
        if len(everything) > MAX_FIELD and any(len(value) > MAX_FIELD for value in fields):
            column = next(
                c
                for c, value in zip(COLUMNS + OPTIONAL_COLUMNS, picked, strict=False)
                if len(value) > MAX_FIELD
            )
            raise RowError(f"{column} is longer than {MAX_FIELD} characters")
        external_id, name, email_raw, phone_raw, region, services, locale = picked[:7]
        external_id = external_id.strip()
        if len(external_id) > MAX_EXTERNAL_ID:
            raise RowError(f"external_id is longer than {MAX_EXTERNAL_ID} characters")
        name = " ".join(name.split())
        if len(name) > MAX_NAME:
            raise RowError(f"name is longer than {MAX_NAME} characters")
        email_raw, phone_raw = email_raw.strip(), phone_raw.strip()
        if not email_raw and not phone_raw:
            raise RowError("needs an e-mail or a phone (both are empty)")
        email = normalise_email(email_raw) if email_raw else None
        if phone_raw:  # the fast path straight away; its fallback explains a refusal
            phone = phones.fast_e164(phone_raw, self._country) or normalise_phone(phone_raw, self._country)
        else:
            phone = None
        region = region.strip()
        if not region or region not in self._regions:
            raise RowError(f"unknown region {region!r}" if region else "region is empty")
        locale = self._locale_of(locale)
        services = self._services_of(services)
        row = (external_id or None, name, name.casefold(), email, email.lower() if email else None, phone, region,
               services, locale)  # fmt: skip
        return (*row, _channels(picked[7], email, phone)) if self.has_channels else row

    def _locale_of(self, raw: str) -> str:
        locale = self._locales.get(raw)
        if locale is None:
            locale = raw.strip().lower() or self._default_locale
            if locale not in LOCALES:
                raise RowError(f"locale must be one of {', '.join(LOCALES)}, not {locale!r}")
            if len(self._locales) < 256:
                self._locales[raw] = locale
        return locale

    def _services_of(self, raw: str) -> str:
        services = self._services.get(raw)
        if services is None:
            services = _services(raw, self._known_services)
            if len(self._services) < 4096:
                self._services[raw] = services
        return services


def clean(values: dict[str, str], config: Config) -> dict[str, Any]:
    """One subscriber's raw fields -> the columns to store; raises RowError with the reason."""
    header = COLUMNS + (OPTIONAL_COLUMNS if "channels" in values else ())
    row = RowRules(header, config)([values.get(column) or "" for column in header])
    return dict(zip(STORED + header[len(COLUMNS) :], row, strict=True))


def _checked_characters(header: list[str], fields: Sequence[str]) -> list[str]:
    """The values without zero-width characters; RowError for bytes that were not UTF-8 and
    for control or direction-changing characters (``notifier.characters``)."""
    if _NOT_UTF8.search("".join(fields)):
        raise RowError("not UTF-8 text (save the file as UTF-8)")
    for column in COLUMNS + OPTIONAL_COLUMNS:
        problem = characters.problem(fields[header.index(column)]) if column in header else None
        if problem:
            raise RowError(f"{column} {problem}")
    return [characters.strip_invisible(value) for value in fields]


def row_key(row: dict[str, Any]) -> tuple[str, str]:
    """The key a clean row is matched by: its account number, else its e-mail, else its phone."""
    if row["external_id"]:
        return ("external_id", row["external_id"])
    if row["email_key"]:
        return ("email_key", row["email_key"])
    return ("phone", row["phone"])
