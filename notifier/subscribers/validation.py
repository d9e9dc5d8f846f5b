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
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from notifier import characters
from notifier.config import LOCALES, Config

COLUMNS: tuple[str, ...] = ("external_id", "name", "email", "phone", "region", "services", "locale")
OPTIONAL_COLUMNS: tuple[str, ...] = ("channels",)  # "email;sms"; absent or empty: by [sms] in the config
CHANNELS: tuple[str, ...] = ("email", "sms")
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


def normalise_email(raw: str) -> str:
    """The normalised form of an e-mail address (email_validator's rules, no DNS lookups)."""
    match = _PLAIN_EMAIL.fullmatch(raw)
    try:
        if match and len(match.group(1)) <= 64 and len(raw) <= 254:
            return f"{match.group(1)}@{_domain(match.group(2))}"
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowError(f"e-mail {raw!r} is not valid: {exc}") from None


def normalise_phone(raw: str, country: str) -> str:
    """A phone number in any common format -> E.164 (``8 912 …`` is read as Russia's trunk prefix)."""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise RowError(f"phone {raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise RowError(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _services(raw: str, config: Config) -> str:
    codes = list(dict.fromkeys(code.strip() for code in raw.split(";") if code.strip()))
    for code in codes:
        if code not in config.services:
            raise RowError(f"unknown service {code!r} (known: {', '.join(sorted(config.services))})")
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


def clean(values: dict[str, str], config: Config) -> dict[str, Any]:
    """One subscriber's raw fields -> the columns to store; raises RowError with the reason."""
    everything = "".join(values.values())
    if characters.suspicious(everything) or _NOT_UTF8.search(everything):
        values = _checked_characters(values)
    if any(len(value) > MAX_FIELD for value in values.values()):
        column = next(c for c in COLUMNS + OPTIONAL_COLUMNS if len(values.get(c) or "") > MAX_FIELD)
        raise RowError(f"{column} is longer than {MAX_FIELD} characters")
    external_id = (values.get("external_id") or "").strip()
    if len(external_id) > MAX_EXTERNAL_ID:
        raise RowError(f"external_id is longer than {MAX_EXTERNAL_ID} characters")
    name = " ".join((values.get("name") or "").split())
    if len(name) > MAX_NAME:
        raise RowError(f"name is longer than {MAX_NAME} characters")
    email_raw, phone_raw = (values.get("email") or "").strip(), (values.get("phone") or "").strip()
    if not email_raw and not phone_raw:
        raise RowError("needs an e-mail or a phone (both are empty)")
    email = normalise_email(email_raw) if email_raw else None
    phone = normalise_phone(phone_raw, config.notifier.default_country) if phone_raw else None
    region = (values.get("region") or "").strip()
    if not region:
        raise RowError("region is empty")
    if region not in config.regions:
        raise RowError(f"unknown region {region!r}")
    locale = (values.get("locale") or "").strip().lower() or config.notifier.default_locale
    if locale not in LOCALES:
        raise RowError(f"locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    row: dict[str, Any] = {
        "external_id": external_id or None,
        "name": name,
        "name_key": name.casefold(),
        "email": email,
        "email_key": email.lower() if email else None,
        "phone": phone,
        "region": region,
        "services": _services(values.get("services") or "", config),
        "locale": locale,
    }
    if "channels" in values:  # only when the file (or the command) has the column: else kept as stored
        row["channels"] = _channels(values.get("channels") or "", email, phone)
    return row


def _checked_characters(values: dict[str, str]) -> dict[str, str]:
    """The values without zero-width characters; RowError for bytes that were not UTF-8 and
    for control or direction-changing characters (``notifier.characters``)."""
    if _NOT_UTF8.search("".join(values.values())):
        raise RowError("not UTF-8 text (save the file as UTF-8)")
    for column in COLUMNS + OPTIONAL_COLUMNS:
        problem = characters.problem(values.get(column) or "")
        if problem:
            raise RowError(f"{column} {problem}")
    return {column: characters.strip_invisible(value) for column, value in values.items()}


def row_key(row: dict[str, Any]) -> tuple[str, str]:
    """The key a clean row is matched by: its account number, else its e-mail, else its phone."""
    if row["external_id"]:
        return ("external_id", row["external_id"])
    if row["email_key"]:
        return ("email_key", row["email_key"])
    return ("phone", row["phone"])
