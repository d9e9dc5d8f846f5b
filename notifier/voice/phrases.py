"""The phone line's own few words, in each language: greeting, "nothing is wrong", the
personal lines for a known caller, the keypad menu and its answers.

Fixed phrases in ru/en tables rather than templates: ``notifier templates check`` covers the
kinds ``rendering`` knows, and these are a dozen short sentences that support staff do not
edit. What an incident *is* comes from the hotline announcement (``templates/hotline``),
never from here. Each phrase is a ``str.format`` pattern over plain values.
"""

from __future__ import annotations

from notifier.config import LOCALES
from notifier.wording import ru_plural

PHRASES: dict[str, dict[str, str]] = {
    "greeting": {
        "ru": "Здравствуйте! Вы позвонили на горячую линию компании {company}.",
        "en": "Hello, you have reached the {company} hotline.",
    },
    "no_outage_here": {
        "ru": "В вашем регионе, {region}, сейчас сбоев нет. Все наши сервисы работают в обычном режиме.",
        "en": "There is no outage in your region, {region}, right now. All our services are working normally.",
    },
    "no_outage": {
        "ru": "Сейчас сбоев нет. Все наши сервисы работают в обычном режиме.",
        "en": "There is no outage right now. All our services are working normally.",
    },
    "elsewhere": {
        "ru": "Сейчас есть сбой в других регионах: {regions}. Ваш регион он не затрагивает.",
        "en": "There is an outage in other regions right now: {regions}. It does not affect your region.",
    },
    "affects_you": {
        "ru": "Сейчас у нас сбой, который затрагивает и вас: {services}.",
        "en": "We have an outage right now that affects you too: {services}.",
    },
    "spares_you": {
        "ru": "Сейчас в вашем регионе есть сбой, но ваших сервисов он не касается.",
        "en": "There is an outage in your region right now, but it does not affect the services you use.",
    },
    "hello": {
        "ru": "Здравствуйте!",
        "en": "Hello!",
    },
    "callback_due": {
        "ru": "Мы помним, что обещали вам перезвонить, и перезвоним в ближайшие {within}.",
        "en": "We remember that we promised to call you back, and we will within the next {within}.",
    },
    "callback_late": {
        "ru": "Мы обещали вам перезвонить и опаздываем. Простите нас: ваш звонок уже передан старшему смены.",
        "en": "We promised to call you back and we are late. We are sorry: your call has gone to the shift lead.",
    },
    "menu_callback": {
        "ru": "Чтобы мы вам перезвонили, нажмите 1.",
        "en": "To be called back, press 1.",
    },
    "menu_operator": {
        "ru": "Чтобы поговорить с оператором, нажмите 2.",
        "en": "To speak to an operator, press 2.",
    },
    "callback_recorded": {
        "ru": "Спасибо. Мы записали вашу просьбу и перезвоним вам в ближайшие {within}. До свидания!",
        "en": "Thank you. We have noted your request and will call you back within the next {within}. Goodbye!",
    },
    "callback_already": {
        "ru": "Мы уже записали вашу просьбу и перезвоним вам в ближайшие {within}. До свидания!",
        "en": "We already have your request and will call you back within the next {within}. Goodbye!",
    },
    "callback_overdue": {
        "ru": "Мы уже записали вашу просьбу и опаздываем со звонком. Простите нас: мы перезвоним как можно скорее.",
        "en": "We already have your request and we are late calling you. We are sorry: we will call as soon as we can.",
    },
    "no_number": {
        "ru": "К сожалению, мы не видим ваш номер и не сможем перезвонить. Позвоните нам, пожалуйста, с открытого номера.",
        "en": "Unfortunately we cannot see your number, so we cannot call you back. Please call us from a number that is not withheld.",
    },
    "connecting": {
        "ru": "Соединяем с оператором. Пожалуйста, оставайтесь на линии.",
        "en": "Connecting you to an operator. Please stay on the line.",
    },
    "not_understood": {
        "ru": "Не удалось распознать выбор.",
        "en": "Sorry, that was not one of the choices.",
    },
    "goodbye": {
        "ru": "Спасибо за звонок. До свидания!",
        "en": "Thank you for calling. Goodbye!",
    },
}

_UNITS = {
    "ru": {"d": ("день", "дня", "дней"), "h": ("час", "часа", "часов"), "min": ("минуту", "минуты", "минут")},
    "en": {
        "d": ("day", "days", "days"),
        "h": ("hour", "hours", "hours"),
        "min": ("minute", "minutes", "minutes"),
    },
}


def phrase(name: str, locale: str, **values: str) -> str:
    """One phrase in ``locale`` (ru or en), its ``{placeholders}`` filled from ``values``."""
    table = PHRASES[name]
    return table[locale if locale in LOCALES else "ru"].format(**values)


def spoken_span(seconds: float, locale: str) -> str:
    """``2 часа``, ``1 час 30 минут``, ``45 минут`` / ``2 hours`` …: a span as it is said.

    Rounded up to the minute (a promise is never shortened), at least one minute; the Russian
    forms fit after «в ближайшие».
    """
    minutes = max(1, int(-(-seconds // 60)))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = []
    for n, unit in ((days, "d"), (hours, "h"), (mins, "min")):
        if n:
            one, few, many = _UNITS[locale if locale in LOCALES else "ru"][unit]
            word = ru_plural(n, one, few, many) if locale == "ru" else (one if n == 1 else many)
            parts.append(f"{n} {word}")
    return " ".join(parts)
