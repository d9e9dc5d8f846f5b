"""Rendering notifications from the templates support staff edit: text in, text out.

Owns the Jinja2 environment (sandboxed and bounded by ``sandbox``, strict, autoescape for ``.html`` only), the context
templates see, and checking that every template renders. The words, dates and durations in
that context come from ``wording`` (re-exported here, so ``rendering.format_duration`` and
the like still work). It does not build MIME, queue or send anything.

A ``Renderer`` compiles each template once and caches everything that depends only on the
incident, update, region and language; per message it adds just the reader's name, services
and unsubscribe link. A status notice's or an apology's text is rendered once per group of
readers who share everything but their own values (name, unsubscribe and preferences links),
with marks in their place, and each letter fills them in, escaped for HTML as Jinja would: a
mailing of tens of thousands renders a few dozen times. A template that does more with those
values than print them or test them in an ``if`` (a filter, a comparison, a ``set``) is
rendered for every reader instead, as is any whose two renders with marks of different
lengths disagree anywhere but at the marks.
The context templates see is documented in ``templates/README.md``. The internal kinds
(``reminder``, ``escalation``, ``paused``, ``over_budget``: notices to our own staff) get their
context from ``staff_notices`` and are checked with the rest. Status notices and apologies
also render as SMS (``channel="sms"``: ``templates/sms/<kind>/<lang>/body.txt``, one text
whose segments — ``segments`` — may not exceed ``[sms].max_segments``; the apology SMS links
the reader's full letter, ``letters``). Planned work (``maintenance.letters``: the announcement
with its ``.ics`` attachment, reminders, started/completed/rescheduled/cancelled/extended
notices, on-call's overrun note) and the subscription confirmation (``subscriptions``) are
``PLANNED_KINDS``, rendered and checked the same way; every letter to a subscriber gets its
``preferences_url``, and a status notice of an incident declared during planned work says so
(``planned_work``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    meta,
    nodes,
)
from markupsafe import Markup, escape

from notifier import languages, letters, segments, staff_notices, subscriptions
from notifier.composing import Attachment
from notifier.config import LOCALES, Config
from notifier.errors import ConfigError, TemplateProblem, UsageError
from notifier.maintenance import letters as planned_letters
from notifier.models import Call, Callback, Incident, MailingPause, Subscriber, Update, utcnow
from notifier.samples import sample_incident, sample_subscriber, sample_update
from notifier.sandbox import BoundedEnvironment, TemplateTooBig
from notifier.wording import (
    STATUS_LABELS,
    compensation_text,
    format_duration,
    moment,
    period_text,
    ru_plural,
    services_phrase,
    zone_label,
)

# About an incident, for subscribers and the hotline; then the notices to our own staff.
KINDS: tuple[str, ...] = ("status", "apology", "hotline")
INTERNAL_KINDS: tuple[str, ...] = ("reminder", "escalation", "paused", "over_budget")  # ``staff_notices``
# Planned work and the subscription confirmation (``maintenance.letters``, ``subscriptions``).
PLANNED_KINDS: tuple[str, ...] = (*planned_letters.KINDS, "subscription_confirm")
ALL_KINDS: tuple[str, ...] = KINDS + INTERNAL_KINDS + PLANNED_KINDS
_FOLDERS = {"status": "email/status", "apology": "email/apology", "hotline": "hotline",
            "reminder": "internal/reminder", "escalation": "internal/escalation", "paused": "internal/paused",
            "over_budget": "internal/over_budget"}  # fmt: skip
_PARTS = {"status": ("subject.txt", "body.txt", "body.html"), "apology": ("subject.txt", "body.txt", "body.html"),
          "hotline": ("subject.txt", "body.txt"), "reminder": ("subject.txt", "body.txt"),
          "escalation": ("subject.txt", "body.txt"), "paused": ("subject.txt", "body.txt"),
          "over_budget": ("subject.txt", "body.txt")}  # fmt: skip
_FOLDERS.update({kind: f"email/{kind}" for kind in PLANNED_KINDS})
_FOLDERS["maintenance_overrun"] = "internal/maintenance_overrun"
_PARTS.update({kind: ("subject.txt", "body.txt", "body.html") for kind in PLANNED_KINDS})
_PARTS["maintenance_overrun"] = ("subject.txt", "body.txt")
# Also sent as SMS: templates/sms/<kind>/<lang>/body.txt (planned work too, as [sms].planned_work says).
SMS_KINDS: tuple[str, ...] = ("status", "apology", *planned_letters.PLANNED_KINDS, "subscription_confirm")
_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# A mailing's letters differ from reader to reader only by these values; the rest of the context
# is the same for every reader of one region, language and set of services. Where a template
# only prints them or tests whether they are empty, it is rendered once per such group with
# marks in their place, and each letter is that text with the marks filled in (``_Shared``).
_OWN = ("name", "unsubscribe_url", "preferences_url")
_MARKS = tuple({key: f"\ue000{key[0] * n}&{'<' * n}\ue001" for key in _OWN} for n in (1, 2))  # two lengths
_SLOT = "\ue002"  # around a value's name in a shared text; never in a template's own text (checked)
_SHARED_KINDS = ("status", "apology")

# Labels the context uses -----------------------------------------------------------------

_SEVERITY_LABELS = {
    "ru": {"minor": "незначительный", "major": "серьёзный", "critical": "критический"},
    "en": {"minor": "minor", "major": "major", "critical": "critical"},
}
_DEFAULT_MESSAGE = {
    "ru": "Мы уже разбираемся в причинах и сообщим, как только появятся новости.",
    "en": "We are already looking into it and will let you know as soon as we know more.",
}


def nl2br(value: Any) -> Markup:
    """Escape, then keep line breaks: for multi-line causes and measures in HTML."""
    return Markup("<br>\n").join(escape(str(value)).splitlines())


# The renderer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str  # one line, stripped; any CR/LF/control char collapsed to a space
    text: str
    html: str | None  # None for hotline
    attachments: tuple[Attachment, ...] = ()  # the .ics of a maintenance announcement


@dataclass(frozen=True)
class TemplateIssue:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class _Failed(Exception):
    """A template that does not load, compile or render; carries its TemplateIssue."""

    def __init__(self, issue: TemplateIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _incident_key(incident: Incident) -> tuple[Any, ...]:
    return (incident.id, incident.updated_at, incident.title, incident.severity, incident.status,
            tuple(incident.regions), tuple(incident.services), incident.started_at, incident.resolved_at,
            incident.cause, incident.measures, incident.compensation_days, repr(incident.translations))  # fmt: skip


class Renderer:
    """Templates of one ``templates_dir``, compiled once; render at send time, check before."""

    def __init__(self, config: Config, *, share_renders: bool = True) -> None:
        """``share_renders=False`` renders every letter in full (what sharing must equal)."""
        self.config = config
        self.share_renders = share_renders
        self.directory = config.templates_dir
        self.env = BoundedEnvironment(
            loader=_RememberingLoader(str(self.directory), encoding="utf-8"),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["nl2br"] = nl2br
        self.env.filters["ru_plural"] = ru_plural
        self._templates: dict[str, Template] = {}
        self._shared: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._readers: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}  # -> (shared, reader)
        # (template, group) -> (its shared context, its reader part, the text; None = render in full)
        self._texts: dict[tuple[Any, ...], tuple[Any, Any, _Shared | None]] = {}
        self._plain: dict[str, bool] = {}
        self._secret: bytes | None = None
        self.digest = self._digest()
        self._looked = time.monotonic()

    # Loading ----------------------------------------------------------------------------

    def _digest(self) -> str:
        """A fingerprint of every template file (name, size, change time): it changes on any edit."""
        entries = []
        for path in sorted(self.directory.rglob("*")):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                entries.append(f"{path.relative_to(self.directory)}:{stat.st_size}:{stat.st_mtime_ns}")
        return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:32]

    def reload_if_changed(self, *, at_most_every: float = 1.0) -> bool:
        """Recompile from the files if any changed since they were read (a long-running
        ``serve`` picks up a fixed template without a restart); True when they had.

        Looks at the files at most once per ``at_most_every`` seconds.
        """
        if time.monotonic() - self._looked < at_most_every:
            return False
        self._looked = time.monotonic()
        digest = self._digest()
        if digest == self.digest:
            return False
        self.digest = digest
        self._templates.clear()
        self._texts.clear()
        self._plain.clear()
        if self.env.cache is not None:
            self.env.cache.clear()
        return True

    def _display(self, name: str) -> str:
        path = self.directory / name
        try:
            return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
        except ValueError:
            return str(path)

    def _template(self, name: str) -> Template:
        template = self._templates.get(name)
        if template is None:
            try:
                template = self.env.get_template(name)
            except TemplateSyntaxError as exc:  # in this file or in a layout it extends (exc.name)
                raise _Failed(
                    TemplateIssue(self._display(exc.name or name), exc.lineno, exc.message or "syntax error")
                ) from None
            except TemplateNotFound:
                raise _Failed(TemplateIssue(self._display(name), None, "missing template file")) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise _Failed(TemplateIssue(self._display(name), None, f"cannot read: {exc}")) from None
            self._templates[name] = template
        return template

    def _run(self, name: str, context: dict[str, Any]) -> str:
        template = self._template(name)
        try:
            return self.env.run(template, context)
        except TemplateSyntaxError as exc:  # in a layout it extends, compiled only now
            issue = TemplateIssue(self._display(exc.name or name), exc.lineno, exc.message or "syntax error")
            raise _Failed(issue) from None
        except Exception as exc:  # whatever a staff-edited template does wrong, report where
            line = getattr(exc, "lineno", None) if isinstance(exc, TemplateTooBig) else None
            where = self._display(name)
            for frame, lineno in traceback.walk_tb(exc.__traceback__):
                filename = frame.f_code.co_filename
                if filename == template.filename:
                    where, line = self._display(name), lineno
                elif filename.startswith(f"{self.directory}{os.sep}"):  # a layout it extends
                    where, line = self._display(os.path.relpath(filename, self.directory)), lineno
            message = str(exc) or type(exc).__name__
            raise _Failed(TemplateIssue(where, line, message)) from None

    def _run_shared(self, name: str, context: dict[str, Any], group: tuple[Any, ...]) -> str:
        """``_run``, from the text this reader's group shares when the template allows it."""
        own = _own_values(context)
        if not all(isinstance(value, str) for value in own.values()):  # None, say: as the template sees it
            return self._run(name, context)
        parts = group[:2]  # the shared context and the reader's services part: kept alive by the entry
        key = (name, *map(id, parts), *group[2:], tuple(not own[k] for k in _OWN))  # "" may take another branch
        entry = self._texts.get(key)
        if entry is None or entry[0] is not parts[0] or entry[1] is not parts[1]:
            if len(self._texts) >= 4096:
                self._texts.clear()
            entry = self._texts[key] = (*parts, self._share(name, context, own))
        shared = entry[2]
        return self._run(name, context) if shared is None else shared.fill(own)

    def _share(self, name: str, context: dict[str, Any], own: dict[str, str]) -> _Shared | None:
        """The template rendered with marks for the reader's own values, or None when it must be
        rendered for each reader: it does more with them than print them or test them (a
        filter, a comparison, a loop), or the two renders with marks of different lengths
        disagree anywhere but at the marks."""
        self._template(name)  # compiled (and its source kept) first: a mistake is reported as always
        if not self._plain_uses(name):
            return None
        html = bool(self.env.autoescape(name))  # type: ignore[operator]  # our rule: .html files
        texts = []
        for marks in _MARKS:
            values = {k: marks[k] if own[k] else "" for k in _OWN}
            text = self._run(name, _with_values(context, values))
            if _SLOT in text:
                return None
            for k in _OWN:
                if values[k]:
                    text = text.replace(str(escape(values[k])) if html else values[k], f"{_SLOT}{k}{_SLOT}")
            texts.append(text)
        if texts[0] != texts[1] or "\ue000" in texts[0] or "\ue001" in texts[0]:
            return None
        return _Shared(tuple(texts[0].split(_SLOT)), html)

    def _plain_uses(self, name: str) -> bool:
        """Whether ``name`` and every template it extends, includes or imports use the reader's
        own values only as ``{{ value }}`` or as the test of an ``if``."""
        plain = self._plain.get(name)
        if plain is None:
            plain = self._plain[name] = self._plain_in(name, set())
        return plain

    def _plain_in(self, name: str, seen: set[str]) -> bool:
        if name in seen:
            return True
        seen.add(name)
        loader: _RememberingLoader = self.env.loader  # type: ignore[assignment]
        try:
            source = loader.sources.get(name)
            if source is None:
                source, _, _ = loader.get_source(self.env, name)
            tree = self.env.parse(source)
        except Exception:  # reported by the full render, which is what runs then
            return False
        return _only_printed_or_tested(tree, None) and all(
            ref is not None and self._plain_in(ref, seen) for ref in meta.find_referenced_templates(tree)
        )

    # Context ----------------------------------------------------------------------------

    def _region(self, code: str | None, incident: Incident) -> str:
        for candidate in (code, *incident.regions):
            if candidate in self.config.regions:
                return candidate
        return next(iter(self.config.regions))

    def _shared_context(
        self, incident: Incident, update: Update | None, region: str, locale: str, now: datetime | None
    ) -> dict[str, Any]:
        # An open incident's duration grows with `now`: it keys the cache by the minute.
        minute = (now or utcnow()).replace(second=0, microsecond=0) if incident.resolved_at is None else None
        update_key = (
            (update.id, update.kind, update.status, update.message, update.created_at, repr(update.translations))
            if update else None
        )
        key = (_incident_key(incident), update_key, region, locale, minute)
        shared = self._shared.get(key)
        if shared is None:
            if len(self._shared) >= 1024:
                self._shared.clear()
                self._readers.clear()
            shared = self._shared[key] = self._build_shared(incident, update, region, locale, minute)
        return shared

    def _build_shared(
        self, incident: Incident, update: Update | None, region: str, locale: str, now: datetime | None
    ) -> dict[str, Any]:
        cfg = self.config
        area = cfg.regions[region]
        zone, label = area.zone, zone_label(area.timezone, locale)
        started_at = incident.started_at.replace(second=0, microsecond=0)
        started = moment(started_at, zone, label, locale)
        resolved = period = None
        if incident.resolved_at is not None:
            resolved_at = incident.resolved_at.replace(second=0, microsecond=0)
            resolved = moment(resolved_at, zone, label, locale)
            duration = format_duration(resolved_at - started_at, locale)
            period = period_text(started, resolved, label, duration, locale)
        else:
            duration = format_duration((now or utcnow()) - started_at, locale)
        region_names = [cfg.regions[c].name.get(locale) if c in cfg.regions else c for c in incident.regions]
        service_names = [
            cfg.services[c].name.get(locale) if c in cfg.services else c for c in incident.services
        ]
        statuses = STATUS_LABELS[locale]
        update_status = update.status if update else incident.status
        return {
            "locale": locale,
            "company": cfg.notifier.company.get(locale),
            "hotline_phone": cfg.notifier.hotline_phone,
            "support_email": cfg.notifier.support_email,
            "status_page_url": cfg.notifier.public_base_url + "/",
            "status_label": statuses.get(incident.status, incident.status),
            "incident": {
                "ref": incident.ref, "title": languages.text(incident, "title", locale), "severity": incident.severity,
                "severity_label": _SEVERITY_LABELS[locale].get(incident.severity, incident.severity),
                "status": incident.status,
                "regions": region_names, "regions_text": ", ".join(region_names),
                "services": service_names, "services_phrase": services_phrase(service_names, locale),
                "cause": languages.text(incident, "cause", locale),
                "measures": languages.text(incident, "measures", locale),
                "started": started, "resolved": resolved, "duration": duration, "period": period,
                "compensation_days": incident.compensation_days,
                "compensation": compensation_text(incident.compensation_days, locale),
            },
            "update": {
                "message": (languages.text(update, "message", locale) if update else "") or _DEFAULT_MESSAGE[locale],
                "status": update_status, "status_label": statuses.get(update_status, update_status),
                "first": update is None or update.kind == "declared",
                "time": moment(update.created_at if update else incident.declared_at, zone, label, locale),
            },
            "_region": {"region": region, "region_name": area.name.get(locale), "zone_label": label},
        }  # fmt: skip

    def _reader(
        self, shared: dict[str, Any], incident: Incident, subscriber: Subscriber | None
    ) -> dict[str, Any]:
        """The part that depends on the subscriber's services (cached: few distinct sets)."""
        services = subscriber.services if subscriber else ""
        key = (id(shared), services)
        entry = self._readers.get(key)
        reader = entry[1] if entry is not None and entry[0] is shared else None  # the entry keeps ``shared`` alive
        if reader is None:
            if len(self._readers) >= 4096:
                self._readers.clear()
            locale, names = shared["locale"], shared["incident"]["services"]
            own = [c for c in (subscriber.service_list if subscriber else []) if c in self.config.services]
            hit = [c for c in own if c in incident.services] if incident.services else own
            if hit:
                names = [self.config.services[c].name.get(locale) for c in hit]
            reader = {
                **shared["_region"],
                "services": names,
                "services_phrase": services_phrase(names, locale),
            }
            self._readers[key] = (shared, reader)
        return reader

    # Rendering --------------------------------------------------------------------------

    def context(
        self, kind: str, *, incident: Incident | None, locale: str, region: str | None = None,
        subscriber: Subscriber | None = None, update: Update | None = None, unsubscribe_url: str = "",
        now: datetime | None = None, **staff: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """The variables a template of ``kind`` sees (documented in templates/README.md).

        ``staff`` are the internal kinds' own facts: ``callback``, ``call`` and ``level`` for an
        escalation, ``pause`` and ``waiting`` for a paused-mailing note.
        """
        return self._context(kind, incident=incident, locale=locale, region=region, subscriber=subscriber,
                             update=update, unsubscribe_url=unsubscribe_url, now=now, **staff)[0]  # fmt: skip

    def _context(
        self, kind: str, *, incident: Incident | None, locale: str, region: str | None = None,
        subscriber: Subscriber | None = None, update: Update | None = None, unsubscribe_url: str = "",
        now: datetime | None = None, **staff: Any,
    ) -> tuple[dict[str, Any], tuple[Any, ...] | None]:  # fmt: skip
        """``context``, and for a status notice or an apology the group of readers whose letters
        share their text but for the reader's own values (``_run_shared``)."""
        if kind not in ALL_KINDS:
            raise UsageError(f"unknown kind {kind!r} (one of {', '.join(ALL_KINDS)})")
        if locale not in LOCALES:
            locale = self.config.notifier.default_locale
        if kind in PLANNED_KINDS:
            return self._planned_context(kind, locale, subscriber, unsubscribe_url, now, **staff), None
        if kind in INTERNAL_KINDS:
            return self._staff_context(kind, incident, locale, subscriber, update, now, **staff), None
        if incident is None:
            raise UsageError(f"a {kind} message is about an incident; none was given")
        if kind == "apology" and incident.resolved_at is None:
            raise UsageError(f"{incident.ref} is not resolved yet: its apology is written after resolution")
        code = self._region(region or (subscriber.region if subscriber else None), incident)
        shared = self._shared_context(incident, update, code, locale, now)
        base = self._reader(shared, incident, subscriber)
        planned = self._planned_work(incident, locale)
        context = {**shared, "reader": {**base, "name": subscriber.name if subscriber else ""},
                   "unsubscribe_url": unsubscribe_url, "preferences_url": self.preferences_url(subscriber),
                   "planned_work": planned}  # fmt: skip
        return context, ((shared, base, planned) if kind in _SHARED_KINDS else None)

    def _staff_context(
        self, kind: str, incident: Incident | None, locale: str, subscriber: Subscriber | None,
        update: Update | None, now: datetime | None, *, callback: Callback | None = None,
        call: Call | None = None, level: int | None = None, pause: MailingPause | None = None, waiting: int = 0,
        mailing: str = "", held: int = 0,
    ) -> dict[str, Any]:  # fmt: skip
        if kind == "over_budget":
            if incident is None:
                raise UsageError("an over-budget note is about an incident's mailing; none was given")
            return staff_notices.over_budget_context(self.config, incident=incident, mailing=mailing, held=held,
                                                     locale=locale)  # fmt: skip
        if kind == "reminder":
            if incident is None:
                raise UsageError("a reminder is about an incident; none was given")
            return staff_notices.reminder_context(self.config, incident=incident, update=update, locale=locale,
                                                  now=now)  # fmt: skip
        if kind == "paused":
            if pause is None:
                raise UsageError("a paused-mailing note needs the pause it is about")
            return staff_notices.paused_context(self.config, pause=pause, waiting=waiting, locale=locale)
        if callback is None or call is None:
            raise UsageError("an escalation needs the callback and the call it was promised on")
        return staff_notices.escalation_context(
            self.config, incident=incident, callback=callback, call=call, subscriber=subscriber, locale=locale,
            level=level, now=now,
        )  # fmt: skip

    def render(
        self, kind: str, *, incident: Incident | None, locale: str, region: str | None = None,
        subscriber: Subscriber | None = None, update: Update | None = None, unsubscribe_url: str = "",
        now: datetime | None = None, channel: str = "email", letter_url: str | None = None, **staff: Any,
    ) -> Rendered:  # fmt: skip
        """Subject, text and HTML (None for hotline and the internal kinds); TemplateProblem names file:line.

        ``staff`` as for :meth:`context`: ``callback``, ``call`` and ``level`` (default: the
        callback's escalations so far) for an ``escalation``, whose ``subscriber`` is the one
        promised the callback (None if unknown); ``pause`` and ``waiting`` for ``paused``;
        ``mailing`` and ``held`` for ``over_budget``. ``channel="sms"`` renders a status notice
        or an apology as one SMS text (no subject, no HTML); the apology's ``letter_url`` is
        signed here for ``subscriber`` unless given.
        """
        ctx, group = self._context(kind, incident=incident, locale=locale, region=region, subscriber=subscriber,
                                   update=update, unsubscribe_url=unsubscribe_url, now=now, **staff)  # fmt: skip
        if channel == "sms":
            return self._render_sms(kind, ctx, letter_url or self.letter_url(incident, subscriber))
        folder = f"{_FOLDERS[kind]}/{ctx['locale']}/"
        shared = group is not None and self.share_renders

        def run(name: str) -> str:
            return self._run_shared(name, ctx, group) if shared else self._run(name, ctx)  # type: ignore[arg-type]

        try:
            subject = " ".join(_HEADER_BREAKERS.sub(" ", run(folder + "subject.txt")).split())
            text = _tidy(run(folder + "body.txt"))
            html = run(folder + "body.html") if "body.html" in _PARTS[kind] else None
        except _Failed as failed:
            raise TemplateProblem(str(failed.issue)) from None
        extra = planned_letters.attachments(self.config, kind, staff.get("maintenance"), subscriber, ctx["locale"])
        return Rendered(subject=subject, text=text, html=html, attachments=extra)

    # Planned work, subscriptions -------------------------------------------------------

    def _signing_secret(self) -> bytes:
        if self._secret is None:
            self._secret = self.config.secret()
        return self._secret

    def preferences_url(self, subscriber: Subscriber | None) -> str:
        """The signed link to ``subscriber``'s preferences page ("" without one)."""
        if subscriber is None or subscriber.id is None:
            return ""
        try:
            secret = self._signing_secret()
        except ConfigError:  # `templates check` and `preview` may run without the secret: no link then
            return ""
        return subscriptions.preferences_url(self.config, secret, subscriber.id)

    def _planned_work(self, incident: Incident, locale: str) -> str:
        """"This is the planned work … announced on …" for an incident declared during one."""
        known = incident.planned_work
        if not known:
            return ""
        region = self._region(None, incident)
        area = self.config.regions[region]
        announced = moment(datetime.fromisoformat(known["announced_at"]), area.zone, zone_label(area.timezone, locale),
                           locale)  # fmt: skip
        if locale == "ru":
            return f"Это плановые работы «{known['title']}», о которых мы предупреждали {announced['date']}."
        return f"This is the planned work “{known['title']}” announced on {announced['date']}."

    def _planned_context(
        self, kind: str, locale: str, subscriber: Subscriber | None, unsubscribe_url: str, now: datetime | None,
        **facts: Any,
    ) -> dict[str, Any]:  # fmt: skip
        if kind == "subscription_confirm":
            if subscriber is None:
                raise UsageError("a subscription confirmation is for a subscriber; none was given")
            return subscriptions.confirmation_context(self.config, self._signing_secret(), subscriber, locale, now)
        if facts.get("maintenance") is None:
            raise UsageError(f"a {kind} message is about a maintenance; none was given")
        return planned_letters.context(
            self.config, kind, maintenance=facts["maintenance"], locale=locale, subscriber=subscriber,
            unsubscribe_url=unsubscribe_url, preferences_url=self.preferences_url(subscriber),
            lead=facts.get("lead"), now=now,
        )  # fmt: skip

    # SMS --------------------------------------------------------------------------------

    def letter_url(self, incident: Incident | None, subscriber: Subscriber | None) -> str:
        """The signed link to ``subscriber``'s full letter about ``incident`` ("" without both ids)."""
        if incident is None or incident.id is None or subscriber is None or subscriber.id is None:
            return ""
        if self._secret is None:
            self._secret = self.config.secret()
        token = letters.make_token(self._secret, incident.id, subscriber.id)
        return letters.letter_url(self.config.notifier.public_base_url, incident.id, token)

    def _render_sms(self, kind: str, ctx: dict[str, Any], letter_url: str) -> Rendered:
        if kind not in SMS_KINDS:
            raise UsageError(f"{kind} messages are not sent by SMS (only {', '.join(SMS_KINDS)})")
        name = f"sms/{kind}/{ctx['locale']}/body.txt"
        try:
            text = segments.sms_text(self._run(name, {**ctx, "letter_url": letter_url}))
        except _Failed as failed:
            raise TemplateProblem(str(failed.issue)) from None
        problem = segments.over_limit(text, self.config.sms.max_segments)
        if problem:
            raise TemplateProblem(f"{self._display(name)}: {problem}")
        return Rendered(subject="", text=text, html=None)

    @property
    def sms_checked(self) -> bool:
        """SMS templates are checked when SMS is on, or when the templates folder has them."""
        return self.config.sms.enabled or (self.directory / "sms").is_dir()

    def _check_sms(self, kind: str, locale: str) -> list[TemplateIssue]:
        name, issues = f"sms/{kind}/{locale}/body.txt", []
        sample_url = letters.letter_url(self.config.notifier.public_base_url, 42, "1." + "x" * 22)
        for ctx in self._samples(kind, locale):
            try:
                text = segments.sms_text(self._run(name, {**ctx, "letter_url": sample_url}))
            except _Failed as failed:
                issues.append(failed.issue)
                if failed.issue.line is None:
                    break
                continue
            problem = segments.over_limit(text, self.config.sms.max_segments)
            if problem:
                issues.append(TemplateIssue(self._display(name), None, problem))
        return list({str(issue): issue for issue in issues}.values())

    # Checking ---------------------------------------------------------------------------

    def check(self, kinds: Iterable[str] = ALL_KINDS) -> list[TemplateIssue]:
        """Compile every template of ``kinds`` and render it in every language with sample data
        (the SMS ones too, within ``[sms].max_segments``, when ``sms_checked``)."""
        issues: list[TemplateIssue] = []
        kinds = tuple(kinds)
        for kind in kinds if self.sms_checked else ():
            for locale in LOCALES if kind in SMS_KINDS else ():
                issues += self._check_sms(kind, locale)
        for kind in kinds:
            for locale in LOCALES:
                folder = f"{_FOLDERS[kind]}/{locale}/"
                for part in _PARTS[kind]:
                    seen: set[str] = set()
                    for ctx in self._samples(kind, locale):
                        try:
                            out = self._run(folder + part, ctx)
                        except _Failed as failed:
                            if str(failed.issue) not in seen:
                                seen.add(str(failed.issue))
                                issues.append(failed.issue)
                            if failed.issue.line is None:
                                break
                            continue
                        if part == "subject.txt" and not out.strip():
                            issue = TemplateIssue(self._display(folder + part), 1, "renders an empty subject")
                            if str(issue) not in seen:
                                seen.add(str(issue))
                                issues.append(issue)
        # A mistake in a shared layout (email/_layouts/…) shows through every letter extending it: once.
        return list(dict.fromkeys(issues))

    def template_count(self, kinds: Iterable[str] = ALL_KINDS) -> int:
        kinds = tuple(kinds)
        sms = sum(len(LOCALES) for kind in kinds if kind in SMS_KINDS) if self.sms_checked else 0
        return sum(len(_PARTS[kind]) * len(LOCALES) for kind in kinds) + sms

    def ensure_ready(self, kinds: Iterable[str]) -> None:
        """Raise TemplateProblem naming file:line if any template of ``kinds`` is broken."""
        issues = self.check(kinds)
        if issues:
            more = f" (and {len(issues) - 1} more; see: notifier templates check)" if len(issues) > 1 else ""
            raise TemplateProblem(f"{issues[0]}{more}")

    def _samples(self, kind: str, locale: str) -> Iterable[dict[str, Any]]:
        """Contexts covering the branches templates take: with and without each optional part."""
        if kind in INTERNAL_KINDS:
            yield from staff_notices.samples(self.config, kind, locale)
            return
        if kind in PLANNED_KINDS:
            yield from (subscriptions.confirmation_samples(self.config, locale) if kind == "subscription_confirm"
                        else planned_letters.samples(self.config, kind, locale))  # fmt: skip
            return
        resolved = sample_incident(self.config)
        bare = sample_incident(self.config, compensation_days=None, services=[], cause="", measures="")
        open_ = sample_incident(self.config, resolved=False)
        reader = sample_subscriber(self.config, locale=locale)
        nameless = sample_subscriber(self.config, locale=locale, name="", services=[])
        url = self.config.notifier.public_base_url + "/unsubscribe/sample-token"
        if kind == "apology":
            cases = [(resolved, reader, None), (bare, nameless, None)]
        elif kind == "status":
            cases = [(open_, reader, sample_update(open_)), (open_, nameless, None), (bare, reader, None)]
        else:
            cases = [(open_, None, sample_update(open_)), (open_, None, None), (resolved, None, None),
                     (bare, None, None)]  # fmt: skip
        for incident, subscriber, update in cases:
            yield self.context(kind, incident=incident, locale=locale, subscriber=subscriber, update=update,
                               unsubscribe_url=url if subscriber else "")  # fmt: skip


class _RememberingLoader(FileSystemLoader):
    """A FileSystemLoader that keeps the source of each template it read (``_plain_in`` parses it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, str] = {}

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        self.sources[template] = source
        return source, filename, uptodate


@dataclass(frozen=True)
class _Shared:
    """A text shared by a group of readers: literal pieces and, between them, the names of the
    reader's own values (``pieces[1::2]``), escaped when filled in if the template is HTML."""

    pieces: tuple[str, ...]
    html: bool

    def fill(self, own: dict[str, str]) -> str:
        pieces = list(self.pieces)
        for n in range(1, len(pieces), 2):
            value = own[pieces[n]]
            pieces[n] = str(escape(value)) if self.html else value
        return "".join(pieces)


def _own_values(context: dict[str, Any]) -> dict[str, Any]:
    return {"name": context["reader"]["name"], "unsubscribe_url": context["unsubscribe_url"],
            "preferences_url": context["preferences_url"]}  # fmt: skip


def _with_values(context: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    return {**context, "reader": {**context["reader"], "name": values["name"]},
            "unsubscribe_url": values["unsubscribe_url"], "preferences_url": values["preferences_url"]}  # fmt: skip


def _is_own(node: nodes.Node) -> bool:
    """``reader.name``, ``unsubscribe_url`` or ``preferences_url``, read."""
    if isinstance(node, nodes.Getattr):
        return isinstance(node.node, nodes.Name) and node.node.name == "reader" and node.attr == "name"
    return isinstance(node, nodes.Name) and node.name in _OWN[1:] and node.ctx == "load"


def _only_printed_or_tested(node: nodes.Node, parent: nodes.Node | None) -> bool:
    """No use of the reader's own values in ``node`` but printing one or testing it in an ``if``."""
    if _is_own(node):
        return isinstance(parent, nodes.Output) or (isinstance(parent, nodes.If | nodes.CondExpr) and parent.test is node)
    if isinstance(node, nodes.Name) and node.name in ("reader", *_OWN[1:]):
        if node.ctx != "load" or node.name != "reader":  # assigned, or a bare URL passed somewhere
            return False
        if not (isinstance(parent, nodes.Getattr) and parent.node is node):  # the reader as a whole
            return False
    return all(_only_printed_or_tested(child, node) for child in node.iter_child_nodes())


def _tidy(text: str) -> str:
    """No trailing spaces, at most one blank line in a row (left by optional blocks)."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"
