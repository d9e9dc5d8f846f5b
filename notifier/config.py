"""Typed configuration loaded from ``config.toml``.

Owns parsing and validating the file into a frozen ``Config``; every mistake becomes one
``ConfigError`` line that names the key. It does not read the file at import time: the
CLI callback (or the web app factory) calls :func:`load_config` once and passes the result on.
Secrets are never in the file: it names environment variables that hold them.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from notifier.errors import ConfigError

Locale = Literal["ru", "en"]
LOCALES: tuple[str, ...] = ("ru", "en")
SEVERITIES: tuple[str, ...] = ("minor", "major", "critical")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, None: 1}


MAX_DURATION_DAYS = 3650  # ten years: longer is a typo (and past timedelta's range soon after)


def parse_duration(value: Any) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` -> timedelta (a bare number is seconds).

    ValueError (one line) for anything else, for negative, infinite or NaN durations and for
    more than ``MAX_DURATION_DAYS`` days (``"99999999999d"``, ``1e300``, ``inf``).
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '30s', '5m' or '2h'")
    if isinstance(value, int | float):
        seconds = _seconds(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 90, '30s', '5m' or '2h'")
        number, unit = match.groups()
        seconds = _seconds(number) * _UNIT_SECONDS[unit.lower() if unit else None]
    if math.isnan(seconds):
        raise ValueError(f"{value!r} is not a duration such as 90, '30s', '5m' or '2h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION_DAYS * 86400:
        raise ValueError(f"{value!r} is longer than {MAX_DURATION_DAYS} days, the longest duration allowed")
    return timedelta(seconds=seconds)


def _seconds(number: float | int | str) -> float:
    try:
        return float(number)
    except OverflowError:  # an int too large for a float
        return math.inf


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

# Database URLs notifier can use: SQLite through the standard library, PostgreSQL through psycopg 3.
_DATABASE_URL_RE = re.compile(r"^(?:sqlite(?:\+pysqlite)?:///.+|(?:postgresql|postgres|postgresql\+psycopg)://.+)$")
SUPPORTED_DATABASES = "sqlite:///PATH (a file) or postgresql://USER@HOST/DATABASE"


def database_url_problem(url: str) -> str | None:
    """Why ``url`` is not a database notifier can use (None if it is); never repeats the URL,
    which may hold a password."""
    if _DATABASE_URL_RE.match(url):
        return None
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme and re.fullmatch(r"[\w+.-]{1,40}", scheme):
        return f"{scheme}:// is not a supported database; use {SUPPORTED_DATABASES}"
    return f"not a database URL; use {SUPPORTED_DATABASES}"


class LocalText(BaseModel):
    """A text given once, or per language: ``"Москва"`` or ``{ ru = "Москва", en = "Moscow" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ru: str
    en: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: Any) -> Any:
        return {"ru": value} if isinstance(value, str) else value

    def get(self, locale: str) -> str:
        return (self.en or self.ru) if locale == "en" else self.ru


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotifierSection(_Section):
    database: str = "sqlite:///notifier.db"
    company: LocalText
    hotline_phone: str
    support_email: str
    public_base_url: str = "http://127.0.0.1:8080"
    default_locale: Locale = "ru"
    default_country: str = Field("RU", min_length=2, max_length=2)
    templates: str = ""
    secret_env: str = "NOTIFIER_SECRET"
    oncall_email: str = ""
    # The zone the command line prints times in and reads times without an offset in; "" = this machine's.
    operator_timezone: str = ""

    @field_validator("operator_timezone")
    @classmethod
    def _operator_zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Moscow)") from None
        return value

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class SmtpSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1025, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str = ""
    password_env: str = ""
    from_address: str
    from_name: LocalText | None = None
    connections: int = Field(4, ge=1, le=100)
    rate_limit: float = Field(0, ge=0, description="messages per second for this process, 0 = unlimited")
    timeout: Duration = timedelta(seconds=30)
    helo_name: str = ""
    ca_file: str = ""  # a PEM bundle to trust (relative to the config file), e.g. a private CA
    ca_system: bool = True  # also trust the system's CAs; false: only ca_file
    tls_verify: bool = True  # false: accept any certificate (test relays only; says so loudly)
    throttle_patience: Duration = timedelta(minutes=10)  # wait out a throttling relay this long
    pipelining: bool = True  # RFC 2920: MAIL, RCPT and DATA in one round trip when the server offers it
    dkim_domain: str = ""  # d= of the DKIM signature; empty: mail is not signed
    dkim_selector: str = ""  # s=: the key is published at <selector>._domainkey.<domain>
    dkim_key_file: str = ""  # PEM private key file (relative to this config file) ...
    dkim_key_env: str = ""  # ... or the environment variable holding the PEM

    @model_validator(mode="after")
    def _dkim_complete(self) -> SmtpSection:
        if not (self.dkim_domain or self.dkim_selector or self.dkim_key_file or self.dkim_key_env):
            return self
        if not (self.dkim_domain and self.dkim_selector):
            raise ValueError("DKIM signing needs both dkim_domain and dkim_selector")
        if bool(self.dkim_key_file) == bool(self.dkim_key_env):
            raise ValueError("DKIM signing needs exactly one of dkim_key_file or dkim_key_env")
        if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", self.dkim_selector):
            raise ValueError(f"dkim_selector {self.dkim_selector!r} must be a DNS label such as 's2026'")
        return self

    def password(self) -> str | None:
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"[smtp].password_env names the environment variable {self.password_env}, which is not set."
            )
        return value


class MailingSection(_Section):
    send_status_notices: bool = True
    apology_delay: Duration = timedelta(0)
    retry_backoff: Duration = timedelta(seconds=30)
    retry_backoff_max: Duration = timedelta(hours=1)
    max_attempts: int = Field(8, ge=1)
    heartbeat: Duration = timedelta(seconds=5)  # how often a live sender says so
    heartbeat_timeout: Duration = timedelta(seconds=30)  # silent this long: its messages are taken back
    batch_size: int = Field(500, ge=1, le=10_000)
    database_outage: Duration = timedelta(seconds=60)  # a sender waits this long for the database
    # Readers whose language an incident has no text in: "" holds their apology until `incident
    # edit --cause-en …` gives it; a locale (the default one) sends them the text in that language.
    fallback_locale: Literal["", "ru", "en"] = ""

    @model_validator(mode="before")
    @classmethod
    def _no_lease(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lease" in data:
            raise ValueError(
                "lease is gone: senders keep heartbeats now; set heartbeat_timeout (default 30s) instead"
            )
        return data

    @model_validator(mode="after")
    def _timeout_outlasts_beats(self) -> MailingSection:
        if self.heartbeat.total_seconds() <= 0:
            raise ValueError("heartbeat must be more than 0 s")
        if self.heartbeat_timeout < 3 * self.heartbeat:
            raise ValueError(
                f"heartbeat_timeout must be at least 3 × heartbeat ({3 * self.heartbeat.total_seconds():g} s), "
                "or a live sender's messages could be taken back"
            )
        return self


class Region(_Section):
    name: LocalText
    timezone: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Moscow)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Service(_Section):
    name: LocalText


class CompensationRule(_Section):
    severity: Literal["minor", "major", "critical"]
    min_duration: Duration = timedelta(0)
    days: int = Field(ge=1)


class CompensationSection(_Section):
    cap_days: int = Field(30, ge=0)
    rules: list[CompensationRule] = []

    @model_validator(mode="after")
    def _rules_within_cap(self) -> CompensationSection:
        for index, rule in enumerate(self.rules):
            if rule.days > self.cap_days:
                raise ValueError(
                    f"rules[{index}] grants {rule.days} days, more than cap_days = {self.cap_days}"
                )
        return self


class HotlineTarget(_Section):
    email: str = ""
    webhook: str = ""
    locale: Locale = "ru"

    @model_validator(mode="after")
    def _one_kind(self) -> HotlineTarget:
        if bool(self.email) == bool(self.webhook):
            raise ValueError("each hotline target needs exactly one of email or webhook")
        if self.webhook and not re.match(r"^https?://[^\s/]+", self.webhook):
            raise ValueError(f"webhook {self.webhook!r} must be an http:// or https:// URL")
        return self


class HotlineSection(_Section):
    targets: list[HotlineTarget] = []
    callback_escalate_after: Duration = timedelta(0)  # overdue by this much: first escalation
    callback_escalate_again: Duration = timedelta(hours=2)  # still open this long past due: second
    stale_after: Duration = timedelta(minutes=60)  # an open incident silent this long: remind on-call
    # The second escalation level (callback_escalate_again) goes to these addresses (e.g. a duty
    # manager) instead of [notifier].support_email; empty: support_email again.
    escalate_again_to: list[str] = []


class ServeSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    tick: Duration = timedelta(seconds=2)  # how often due messages are looked for
    housekeeping: Duration = timedelta(seconds=30)  # reclaim leases, remind, escalate
    shutdown_grace: Duration = timedelta(seconds=30)  # in-flight sends may finish within this
    alert_token_env: str = "NOTIFIER_ALERT_TOKEN"
    metrics_token_env: str = "NOTIFIER_METRICS_TOKEN"  # env var with the bearer token for /metrics
    metrics_listen: str = ""  # host:port serving /metrics without a token (an internal address); empty: none
    alert_service_label: str = "service"  # the Alertmanager label naming the service …
    alert_region_label: str = "region"  # … and the region  # env var holding the alert webhook's bearer token

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} must be host:port, e.g. 127.0.0.1:9108")
        return value

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        if not self.metrics_listen:
            return None
        host, _, port = self.metrics_listen.rpartition(":")
        return host.strip("[]"), int(port)


class BouncesSection(_Section):
    """Where bounces and complaints come back; see ``notifier.bounces``."""

    domain: str = ""  # VERP return paths are <local_part>+<signed id>@domain; empty: off
    local_part: str = "bounces"
    listen: str = ""  # host:port of the LMTP/SMTP listener in `notifier serve`; empty: none
    protocol: Literal["lmtp", "smtp"] = "lmtp"
    maildir: str = ""  # a Maildir that bounces land in (relative to this config file); empty: none
    poll_interval: Duration = timedelta(seconds=30)  # how often the Maildir is read
    max_message_size: int = Field(10_000_000, ge=10_000)  # larger bounces are refused
    soft_bounce_threshold: int = Field(3, ge=1)  # this many soft bounces in a row ...
    soft_bounce_window: Duration = timedelta(days=7)  # ... within this: the address is suppressed
    ses_topic_arns: list[str] = []  # SNS topics whose SES events are accepted; none: endpoint off
    mailgun_signing_key_env: str = ""  # env var with Mailgun's webhook signing key; empty: off

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            raise ValueError(f"{value!r} is not a domain name such as bounces.example.com")
        return value.lower()

    @field_validator("local_part")
    @classmethod
    def _local_part(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,30}", value):
            raise ValueError("must be lower-case letters, digits, '.' or '-' (the signed id follows a '+')")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{value!r} must be host:port, e.g. 127.0.0.1:2525")
        return value

    @field_validator("ses_topic_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not re.fullmatch(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+", arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return value

    @property
    def listen_address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class VoiceNames(_Section):
    """One name per language: ``{ ru = "ru", en = "en-gb" }``."""

    ru: str
    en: str

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.ru


_RATE_RE = re.compile(
    r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*([;,]\s*\d+\s*(/|per)\s*(\d+\s*)?"
    r"(second|minute|hour|day)s?\s*)*$"
)


class IvrSection(_Section):
    """The automatic phone line (``notifier.voice``, ``notifier.web.ivr``): what it plays, how."""

    audio_dir: str = "audio"  # synthesised WAVs, relative to this config file
    audio_keep: Duration = timedelta(days=7)  # cached WAVs older than this are removed
    token_env: str = "NOTIFIER_IVR_TOKEN"  # env var with the telephony platform's bearer token
    espeak: str = "espeak-ng"  # the synthesiser (a path, or a name on PATH) ...
    sox: str = "sox"  # ... and the resampler for 8 kHz and 16 kHz
    voices: VoiceNames = VoiceNames(ru="ru", en="en-gb")  # espeak-ng voices
    speed: int = Field(150, ge=80, le=450)  # espeak-ng words per minute
    twiml_prompt: Literal["say", "play"] = "say"  # TwiML: the platform's <Say>, or <Play> of our WAV
    twiml_voices: VoiceNames = VoiceNames(ru="", en="")  # <Say voice=…>; empty: the account's default
    operator_number: str = ""  # "press 2" dials it; empty: the menu offers only "press 1"
    lookup_rate: str = "20/second"  # per client, for caller lookups and keypad requests
    callback_in: Duration = timedelta(hours=2)  # a keypad callback request is due this much later
    callback_owner: str = Field("callcentre", min_length=1)  # who owns the callbacks the line promises
    gather_timeout: int = Field(6, ge=1, le=60)  # seconds of silence before the menu gives up

    @field_validator("lookup_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not _RATE_RE.match(value):
            raise ValueError(f"{value!r} is not a rate such as '20/second' or '10/second;300/minute'")
        return value

    @field_validator("operator_number")
    @classmethod
    def _phone_number(cls, value: str) -> str:
        if value and not re.fullmatch(r"\+?[0-9][0-9 ()-]{2,30}", value):
            raise ValueError(f"{value!r} is not a phone number such as '+7 800 700-12-35'")
        return value

    @field_validator("callback_in")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive interval such as 30m or 2h")
        return value


_CLOCK_RE = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
SMS_FIELDS = ("to", "text", "sender", "report_url", "id", "coding", "token")  # an HTTP API's placeholders


def _secret_from_env(name: str, key: str, what: str) -> str:
    value = os.environ.get(name, "") if name else ""
    if not value:
        shown = name or "(none)"
        raise ConfigError(f"{key} names the environment variable {shown}, which is not set: it holds {what}.")
    return value


class KannelGateway(_Section):
    """Kannel's smsbox ``sendsms`` interface (``[sms.kannel]``)."""

    url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    username: str = "notifier"  # a sendsms-user group of kannel.conf ...
    password_env: str = "NOTIFIER_KANNEL_PASSWORD"  # ... whose password this env var holds
    # Delivery reports wanted: 1 delivered, 2 failed, 4 buffered, 8 taken by the SMSC, 16 refused by it.
    dlr_mask: int = Field(31, ge=0, le=31)
    smsc: str = ""  # route through this smsc-id; empty: Kannel's own routing

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL such as http://127.0.0.1:13013/cgi-bin/sendsms")
        return value

    def password(self) -> str:
        """The sendsms-user's password, from the environment variable ``password_env`` names."""
        return _secret_from_env(self.password_env, "[sms.kannel].password_env", "the sendsms-user's password")


class HttpSmsApi(_Section):
    """A commercial HTTP SMS API, described instead of programmed (``[sms.http]``).

    ``fields`` is the request body (JSON or form); its values may hold the placeholders
    ``{to}``, ``{text}``, ``{sender}``, ``{report_url}``, ``{id}``, ``{coding}``. The token comes
    from ``token_env`` and goes into the ``auth_header`` (``auth_scheme`` first, e.g. Bearer).
    Delivery reports the API posts to ``{report_url}`` are read by the ``report_*`` keys.
    """

    url: str
    encoding: Literal["json", "form"] = "json"
    token_env: str = ""
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"  # the header is "<scheme> <token>"; empty: the token alone
    fields: dict[str, str] = {"to": "{to}", "text": "{text}", "from": "{sender}", "callback_url": "{report_url}"}  # fmt: skip
    refused_statuses: list[int] = []  # HTTP statuses that mean "this number is refused"
    report_status_field: str = "status"  # in the report's JSON or form body (or query string)
    report_code_field: str = "error_code"
    delivered: list[str] = ["delivered"]
    failed: list[str] = ["failed", "undelivered", "rejected"]
    expired: list[str] = ["expired"]
    refused_codes: list[str] = []  # a failed report with one of these codes marks the number bad

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("fields")
    @classmethod
    def _placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            for name in _PLACEHOLDER_RE.findall(template):
                if name not in SMS_FIELDS or name == "token":
                    known = ", ".join("{" + f + "}" for f in SMS_FIELDS if f != "token")
                    raise ValueError(f"{key}: unknown placeholder {{{name}}} (known: {known})")
        if not any("{to}" in t for t in value.values()) or not any("{text}" in t for t in value.values()):
            raise ValueError("must send {to} and {text}")
        return value

    def token(self) -> str:
        """The API token, from the environment variable ``token_env`` names ("" when none is named)."""
        if not self.token_env:
            return ""
        return _secret_from_env(self.token_env, "[sms.http].token_env", "the API token")


Channels = Literal["phone-only", "all", "none"]


class SmsSection(_Section):
    """SMS through an HTTP gateway (``notifier.delivery.sms``); off while ``gateway`` is empty."""

    gateway: Literal["", "kannel", "http"] = ""
    sender: str = ""  # the originator shown on phones: up to 11 letters/digits, or a number
    # Who gets status notices and the apology by SMS when their own channels say nothing.
    status_notices: Channels = "phone-only"
    apologies: Channels = "phone-only"
    planned_work: Channels = "phone-only"  # announcements, reminders and notices of planned maintenance
    max_segments: int = Field(4, ge=1, le=10)  # longer texts are refused by `templates check`, never cut
    max_messages_per_mailing: int = Field(5000, ge=0)  # above it the mailing's SMS are held; 0 = no cap
    quiet_hours: str = "22:00-08:00"  # in the recipient's local time; empty: none
    # Status notices of incidents this severe go out during quiet hours too.
    urgent_severities: list[Literal["minor", "major", "critical"]] = ["major", "critical"]
    rate_limit: float = Field(10, ge=0)  # messages per second per process; 0 = no limit
    concurrency: int = Field(4, ge=1, le=64)  # requests to the gateway at once
    timeout: Duration = timedelta(seconds=10)
    # Where the gateway reaches `notifier serve` with delivery reports; default [notifier].public_base_url.
    report_base_url: str = ""
    kannel: KannelGateway = KannelGateway()
    http: HttpSmsApi | None = None

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip() and not _CLOCK_RE.match(value):
            raise ValueError(f"{value!r} is not a window such as '22:00-08:00' (empty: no quiet hours)")
        return value.strip()

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if value and not re.fullmatch(r"\+?[0-9]{3,15}|[A-Za-z0-9 .&-]{1,11}", value):
            raise ValueError(f"{value!r} must be a number or at most 11 Latin letters and digits")
        return value

    @field_validator("report_base_url")
    @classmethod
    def _report_base(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _gateway_described(self) -> SmsSection:
        if self.gateway == "http" and self.http is None:
            raise ValueError('gateway = "http" needs an [sms.http] section (url, fields, token_env)')
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.gateway)

    @property
    def quiet_window(self) -> tuple[time, time] | None:
        """(start, end) of the quiet hours as local clock times, or None."""
        match = _CLOCK_RE.match(self.quiet_hours) if self.quiet_hours else None
        if match is None:
            return None
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        return (time(h1, m1), time(h2, m2)) if (h1, m1) != (h2, m2) else None

    def policy(self, kind: str) -> str:
        """Who gets ``kind`` (``status``, ``apology``, or ``planned`` for all of planned work's
        messages) by SMS by default: phone-only, all or none."""
        if not self.enabled:
            return "none"
        return {"status": self.status_notices, "apology": self.apologies, "planned": self.planned_work}.get(kind, "none")


class MaintenanceSection(_Section):
    """Planned work (``notifier.maintenance``): when its reminders go and when on-call hears of an overrun."""

    remind_before: list[Duration] = [timedelta(hours=24), timedelta(hours=1)]  # before the start
    # A reminder this long or longer before the start never lands in the reader's local night:
    # it moves to the night's end (still before the start).
    night: str = "22:00-08:00"
    night_applies_from: Duration = timedelta(hours=12)
    overrun_margin: Duration = timedelta(minutes=30)  # past its end this long, not completed: remind on-call

    @field_validator("remind_before")
    @classmethod
    def _leads(cls, value: list[timedelta]) -> list[timedelta]:
        if any(lead <= timedelta(0) for lead in value):
            raise ValueError("every lead time must be longer than 0 (such as \"24h\", \"1h\")")
        return sorted(set(value), reverse=True)

    @field_validator("night")
    @classmethod
    def _night(cls, value: str) -> str:
        if value.strip() and not _CLOCK_RE.match(value):
            raise ValueError(f"{value!r} is not a window such as '22:00-08:00' (empty: no night)")
        return value.strip()

    @property
    def night_window(self) -> tuple[time, time] | None:
        match = _CLOCK_RE.match(self.night) if self.night else None
        if match is None:
            return None
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        return (time(h1, m1), time(h2, m2)) if (h1, m1) != (h2, m2) else None


class SubscriptionsSection(_Section):
    """Self-service subscriptions on the status page (``notifier.subscriptions``)."""

    enabled: bool = True  # false: no subscribe form, /subscribe is 404
    confirm_within: Duration = timedelta(hours=48)  # a confirmation link expires after this
    requests_per_address: str = "3/hour"  # confirmation e-mails to one address (``limits`` notation)
    requests_per_ip: str = "10/hour"  # subscribe requests from one client address

    @field_validator("requests_per_address", "requests_per_ip")
    @classmethod
    def _rate(cls, value: str) -> str:
        if not re.fullmatch(r"\s*\d+\s*/\s*(second|minute|hour|day)\s*", value):
            raise ValueError(f"{value!r} is not a rate such as '3/hour'")
        return value.strip()


class Config(_Section):
    notifier: NotifierSection
    smtp: SmtpSection
    mailing: MailingSection = MailingSection()
    regions: dict[str, Region]
    services: dict[str, Service]
    compensation: CompensationSection = CompensationSection()
    hotline: HotlineSection = HotlineSection()
    serve: ServeSection = ServeSection()
    bounces: BouncesSection = BouncesSection()
    ivr: IvrSection = IvrSection()
    sms: SmsSection = SmsSection()
    maintenance: MaintenanceSection = MaintenanceSection()
    subscriptions: SubscriptionsSection = SubscriptionsSection()
    path: Path = Path("config.toml")

    @field_validator("regions", "services")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("must list at least one entry")
        for code in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", code):
                raise ValueError(f"code {code!r} may only hold letters, digits, '.', '_' and '-'")
        return value

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def database_url(self) -> str:
        """The database URL, with a relative SQLite path taken relative to the config file."""
        url = os.environ.get("NOTIFIER_DATABASE_URL") or self.notifier.database
        problem = database_url_problem(url)
        if problem:
            raise ConfigError(f"NOTIFIER_DATABASE_URL: {problem}")
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str((self.base_dir / url[len(prefix) :]).resolve())
        return url

    @property
    def smtp_ca_file(self) -> Path | None:
        """``[smtp].ca_file`` as a path (relative to the config file), or None."""
        return (self.base_dir / self.smtp.ca_file).resolve() if self.smtp.ca_file else None

    @property
    def templates_dir(self) -> Path:
        if self.notifier.templates:
            return (self.base_dir / self.notifier.templates).resolve()
        return default_templates_dir()

    def secret(self) -> bytes:
        """The signing secret (unsubscribe tokens), from the environment variable the config names."""
        value = os.environ.get(self.notifier.secret_env, "")
        if len(value) < 16:
            raise ConfigError(
                f"Set the environment variable {self.notifier.secret_env} to a random string of at least "
                "16 characters: it signs unsubscribe links ([notifier].secret_env names it)."
            )
        return value.encode()


def default_templates_dir() -> Path:
    """``templates/`` beside the package: the repository's own set."""
    return Path(__file__).resolve().parent.parent / "templates"


def _describe(error: dict[str, Any], path: Path) -> str:
    loc = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
    # Drop pydantic's union/branch markers such as 'str' or 'LocalText'.
    loc = [part for part in loc if part not in {"str", "LocalText", "int", "float"}]
    key = f"[{loc[0]}]" + ("." + ".".join(loc[1:]) if len(loc) > 1 else "") if loc else "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key {key}"
    if kind == "missing":
        what = "section" if len(loc) == 1 else "key"
        return f"{path}: missing {what} {key}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {key}: {message}"


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate already-parsed TOML data; raises ConfigError naming the first bad key."""
    try:
        return Config.model_validate({**data, "path": path})
    except ValidationError as exc:
        errors = exc.errors()
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise ConfigError(_describe(errors[0], path) + more) from None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file: ``path``, else $NOTIFIER_CONFIG, else ./config.toml."""
    chosen = Path(path or os.environ.get("NOTIFIER_CONFIG") or "config.toml")
    try:
        raw = chosen.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{chosen}: no such config file (pass --config PATH or set NOTIFIER_CONFIG)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read the config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{chosen}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    return parse_config(data, chosen.resolve())
