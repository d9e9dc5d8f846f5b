"""Support-console users: who may log in to ``/console``, and proving it with a token.

Owns creating a user with a long random token (shown once; only its SHA-256 is stored:
the token is random enough that a slow password hash would add nothing), checking a name
and token, listing and disabling users, and each user's session generation: a console
session is honoured only while it carries the user's current generation, so logging out
(``end_sessions``) or disabling a user ends every session they had, server-side. Names
follow ``notifier.characters``: no control or direction characters. It does not know
about cookies or rate limits: the web layer keeps who is logged in and who tried.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlmodel import Session

from notifier import characters
from notifier.config import LOCALES
from notifier.errors import NotFoundError, UsageError
from notifier.models import User

TOKEN_PREFIX = "ntf_"
MAX_NAME = 100


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    name = characters.strip_invisible(name or "")
    problem = characters.problem(name)
    name = " ".join(name.split())
    if problem or not 1 <= len(name) <= MAX_NAME:
        raise UsageError(
            f"a user name must be 1 to {MAX_NAME} characters, without control or direction characters"
            + (f" (this one {problem})" if problem else "")
        )
    return name


def add(session: Session, name: str, locale: str | None = None) -> tuple[User, str]:
    """Create a console user; returns it with its token, which is never shown again.

    ``locale``: the language the console speaks to them (None: ``[notifier].default_locale``).
    """
    name = _check_name(name)
    _check_locale(locale)
    if session.execute(select(User).where(User.name == name)).scalars().first() is not None:
        raise UsageError(f"a console user named {name!r} already exists (see: notifier users list)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name, token_hash=hash_token(token), locale=locale)
    session.add(user)
    session.flush()
    return user, token


def authenticate(session: Session, token: str, name: str | None = None) -> User | None:
    """The enabled user this token belongs to (and, when given, whose name it is), or None."""
    token = (token or "").strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    user = session.execute(select(User).where(User.token_hash == digest)).scalars().first()
    if user is None or user.disabled or not hmac.compare_digest(user.token_hash, digest):
        return None
    if name is not None and not same_name(user.name, name):
        return None
    return user


def same_name(stored: str, given: str) -> bool:
    """Whether ``given`` (as typed at login) names the user ``stored``: spaces and case aside."""
    return " ".join(stored.split()).casefold() == " ".join((given or "").split()).casefold()


def get_active(session: Session, user_id: int, generation: int | None = None) -> User | None:
    """The user, unless disabled or (with ``generation``) their sessions were ended since."""
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    if generation is not None and generation != user.session_generation:
        return None
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every console session of this user (logging out does this, and so does ``disable``)."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_generation += 1
        session.add(user)
        session.flush()


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars().all())


def disable(session: Session, name: str) -> User:
    """Stop a user from logging in; a session already open ends at its next request."""
    user = session.execute(select(User).where(User.name == _check_name(name))).scalars().first()
    if user is None:
        raise NotFoundError(f"No console user named {name!r} (see: notifier users list).")
    user.disabled = True
    user.session_generation += 1
    session.add(user)
    session.flush()
    return user


def _check_locale(locale: str | None) -> None:
    if locale is not None and locale not in LOCALES:
        raise UsageError(f"--locale must be one of {', '.join(LOCALES)}, not {locale!r}")


def set_locale(session: Session, user_id: int, locale: str) -> None:
    """The console speaks ``locale`` to this user from now on."""
    _check_locale(locale)
    user = session.get(User, user_id)
    if user is not None:
        user.locale = locale
        session.add(user)
        session.flush()
