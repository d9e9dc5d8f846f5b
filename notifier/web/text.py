"""Words on the web pages in the configured language, and how times are shown to people.

Owns the Russian wording of the pages and of the support console (English is the key
itself; the console's table is ``console_words``), the labels of the Statuspage
vocabularies, local times with their zone, and which language a request is answered in
(:func:`request_locale`: ``?locale=``, else ``Accept-Language``, else the default). Templates
reach these through the Jinja globals ``t``, ``label``, ``local`` and ``tr`` (an incident's or
update's text in the page's language) that ``notifier.web`` installs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.web.console_words import CONSOLE_RU
from notifier.wording import format_duration, moment, zone_label

RU: dict[str, str] = {
    "Service status": "Состояние сервисов",
    "Current incidents": "Текущие сбои",
    "No incidents right now: everything works.": "Сейчас сбоев нет: всё работает.",
    "Resolved in the last 30 days": "Устранены за последние 30 дней",
    "Nothing in the last 30 days.": "За последние 30 дней сбоев не было.",
    "Services": "Сервисы",
    "Region": "Регион",
    "All regions": "Все регионы",
    "Show": "Показать",
    "Regions": "Регионы",
    "all services": "все сервисы",
    "Severity": "Серьёзность",
    "Status": "Статус",
    "Started": "Начало",
    "Resolved": "Устранён",
    "Duration": "Длительность",
    "so far": "пока",
    "Updates": "Обновления",
    "Subscribe to the feed": "Лента обновлений (Atom)",
    "Status API": "API статуса",
    "Hotline": "Горячая линия",
    "Times are shown in each region's local time.": "Время указано местное для региона.",
    "Page not found": "Страница не найдена",
    "There is no page at this address.": "По этому адресу ничего нет.",
    "Back to the status page": "На страницу состояния",
    "Something went wrong": "Что-то пошло не так",
    "The request could not be completed.": "Запрос не выполнен.",
    "The service is temporarily unavailable. Please try again in a minute.": "Сервис временно недоступен. Попробуйте через минуту.",
    "There is no region with that code.": "Региона с таким кодом нет.",
    "Unsubscribe": "Отписаться",
    "Unsubscribe from notifications?": "Отписаться от уведомлений?",
    "You will no longer receive outage notices and letters from us.": "Вы больше не будете получать от нас уведомления о сбоях и письма.",
    "Yes, unsubscribe": "Да, отписаться",
    "You are unsubscribed": "Вы отписались",
    "We will not write to you again. If this was a mistake, contact support:": "Мы больше не будем вам писать. Если это ошибка, напишите в поддержку:",
    "This unsubscribe link is not valid": "Ссылка для отписки недействительна",
    "Please use the link from the latest letter, or contact support:": "Воспользуйтесь ссылкой из последнего письма или напишите в поддержку:",
    "operational": "работает",
    "degraded_performance": "работает с перебоями",
    "partial_outage": "частичный сбой",
    "major_outage": "не работает",
    "investigating": "выясняем причину",
    "identified": "причина найдена, устраняем",
    "monitoring": "работа восстановлена, следим",
    "resolved": "устранён",
    "minor": "незначительный",
    "major": "серьёзный",
    "critical": "критический",
    "The incident is resolved.": "Сбой устранён.",
    "We are looking into it and will post news here.": "Мы разбираемся и сообщим новости здесь.",
    # Planned work and self-service subscriptions (web.maintenance, web.subscribe)
    "Planned work": "Плановые работы",
    "No planned work ahead.": "Плановых работ не предвидится.",
    "scheduled": "запланированы",
    "in progress now": "идут сейчас",
    "From": "С",
    "Until": "До",
    "Add to calendar (.ics)": "Добавить в календарь (.ics)",
    "Subscribe to notices": "Подписаться на уведомления",
    "Get outage and planned-work notices by e-mail": "Уведомления о сбоях и плановых работах на e-mail",
    "E-mail": "E-mail",
    "…or a mobile number, for SMS": "…или номер мобильного телефона — для SMS",
    "Get outage and planned-work notices by e-mail or SMS": "Уведомления о сбоях и плановых работах на e-mail или по SMS",
    "Check your phone": "Проверьте телефон",
    "If this number can be subscribed, an SMS with a confirmation link is on its way. Open it to start receiving notices.":
        "Если этот номер можно подписать, SMS со ссылкой для подтверждения уже в пути. Откройте её, чтобы начать получать уведомления.",
    "Your region": "Ваш регион",
    "Services you use": "Сервисы, которыми Вы пользуетесь",
    "None chosen: all of them.": "Если ничего не выбрать — все.",
    "Language of the letters": "Язык писем",
    "Subscribe": "Подписаться",
    "We will send a confirmation link to this address; nothing else until you open it.":
        "Мы пришлём на этот адрес ссылку для подтверждения и ничего больше, пока Вы её не откроете.",
    "Check your inbox": "Проверьте почту",
    "If this address can be subscribed, a letter with a confirmation link is on its way. Open it to start receiving notices.":
        "Если этот адрес можно подписать, письмо со ссылкой для подтверждения уже в пути. Откройте её, чтобы начать получать уведомления.",
    "Too many requests": "Слишком много запросов",
    "Please wait a while before asking again.": "Пожалуйста, подождите немного, прежде чем пробовать снова.",
    "Confirm your subscription": "Подтвердите подписку",
    "Yes, subscribe me": "Да, подписаться",
    "You are subscribed": "Вы подписаны",
    "From now on we will tell you about outages and planned work that affect you.":
        "Теперь мы будем сообщать Вам о сбоях и плановых работах, которые Вас касаются.",
    "This confirmation link is not valid": "Эта ссылка для подтверждения недействительна",
    "It may have expired. Subscribe again to get a new one.": "Возможно, срок её действия истёк. Подпишитесь снова, чтобы получить новую.",
    "Your notification preferences": "Настройки уведомлений",
    "Ways to reach you": "Как с Вами связаться",
    "SMS": "SMS",
    "Save": "Сохранить",
    "Unsubscribe from everything": "Отписаться от всего",
    "Saved. The next letters follow these preferences.": "Сохранено. Следующие письма придут по этим настройкам.",
    "This address looks like a shared or distribution-list address. Changes here, unsubscribing included, apply to this address only: not to the other people who read it, nor to other addresses of the same account.":
        "Похоже, это общий адрес или адрес рассылки. Изменения здесь, включая отписку, касаются только этого адреса: не других людей, которые его читают, и не других адресов той же организации.",
    "This preferences link is not valid": "Эта ссылка на настройки недействительна",
    "Russian": "Русский",
    "English": "English",
    "Subscribe to notices by e-mail": "Подписаться на уведомления по e-mail",
}


RU.update(CONSOLE_RU)
_LANGUAGE_RANGE = re.compile(r"\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]{1,5}))?\s*")


def translator(locale: str) -> Callable[..., str]:
    """``t("Declared {ref}", ref=…)``: the page's words in ``locale``, then ``str.format``ed."""
    table = RU if locale == "ru" else {}

    def t(text: str, **values: Any) -> str:
        words = table.get(text, text)
        return words.format(**values) if values else words

    return t


def request_locale(query: str | None, accept_language: str | None, default: str) -> str:
    """The language to answer in: ``?locale=`` (refused if not one we speak), else the first
    of ``Accept-Language`` we speak (by its q-values), else ``default``."""
    if query:
        code = query.strip().lower()
        if code not in LOCALES:
            raise UsageError(f"locale must be one of {', '.join(LOCALES)}")
        return code
    ranked = []
    for position, part in enumerate((accept_language or "")[:1000].split(",")[:30]):
        match = _LANGUAGE_RANGE.fullmatch(part)
        if not match:
            continue
        try:
            weight = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        ranked.append((-weight, position, match.group(1).lower()))
    for weight, _, code in sorted(ranked):
        if weight < 0 and code in LOCALES:
            return code
    return default


def local_time(config: Config, locale: str) -> Callable[..., str]:
    """``local(at, region)``: ``23 ноября 2026 г., 10:05 по времени Екатеринбурга``."""
    fallback = next(iter(config.regions))

    def local(at: datetime | None, region: str | None = None) -> str:
        if at is None:
            return ""
        area = config.regions.get(region or fallback) or config.regions[fallback]
        return moment(at, area.zone, zone_label(area.timezone, locale), locale)["text"]

    return local


def operator_time(locale: str, zone: Any) -> Callable[[datetime | None], str]:
    """``operator_time(at)``: a moment in the operator's zone with its offset (``UTC+05:00``),
    for times that belong to no region (an unknown caller's callback)."""

    def at_operator(at: datetime | None) -> str:
        if at is None:
            return ""
        local = at.astimezone(zone)
        offset = local.strftime("%z")
        parts = moment(at, zone, f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC", locale)
        return parts["text"]

    return at_operator


def duration(locale: str) -> Callable[[datetime, datetime], str]:
    return lambda start, end: format_duration(end - start, locale)
