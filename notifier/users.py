"""Support-console users: who may log in to ``/console``, and proving it with a token.

Owns creating a user with a long random token (shown once; only its SHA-256 is stored:
the token is random enough that a slow password hash would add nothing), checking a
token, listing and disabling users. It does not know about cookies or sessions: the web
layer keeps who is logged in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlmodel import Session

from notifier.errors import NotFoundError, UsageError
from notifier.models import User

TOKEN_PREFIX = "ntf_"
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not _NAME.fullmatch(name):
        raise UsageError("a user name must be 1 to 100 characters, without control characters")
    return name


def add(session: Session, name: str) -> tuple[User, str]:
    """Create a console user; returns it with its token, which is never shown again."""
    name = _check_name(name)
    if session.execute(select(User).where(User.name == name)).scalars().first() is not None:
        raise UsageError(f"a console user named {name!r} already exists (see: notifier users list)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name, token_hash=hash_token(token))
    session.add(user)
    session.flush()
    return user, token


def authenticate(session: Session, token: str) -> User | None:
    """The enabled user this token belongs to, or None."""
    token = (token or "").strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    user = session.execute(select(User).where(User.token_hash == digest)).scalars().first()
    if user is None or user.disabled or not hmac.compare_digest(user.token_hash, digest):
        return None
    return user


def get_active(session: Session, user_id: int) -> User | None:
    user = session.get(User, user_id)
    return None if user is None or user.disabled else user


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars().all())


def disable(session: Session, name: str) -> User:
    """Stop a user from logging in; a session already open ends at its next request."""
    user = session.execute(select(User).where(User.name == _check_name(name))).scalars().first()
    if user is None:
        raise NotFoundError(f"No console user named {name!r} (see: notifier users list).")
    user.disabled = True
    session.add(user)
    session.flush()
    return user
