"""Request bodies are bounded: nobody can make the web read 100 MB into the sender's process.

``BodyLimit`` is an ASGI middleware that watches what a route reads, not what a client
sends: a route that refuses before reading (a missing token, no session) never touches the
body, whatever its size; a route that reads gets ``BodyTooLarge`` as soon as the declared
``Content-Length`` or the bytes received pass its limit, and the rest is never read (the
connection is closed after the answer). ``read_body`` is the same for a route with a tighter
limit of its own (the alert webhook). ``errors.install`` answers ``BodyTooLarge`` with a 413.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

DEFAULT_LIMIT = 1024 * 1024  # the console's largest form is ~60 KB; webhooks allow 256-512 KB


class BodyTooLarge(Exception):
    """The request body is larger than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit // 1024} KB, the most this address takes.")
        self.limit = limit


def declared_length(headers: Any) -> int | None:
    """The Content-Length a client declared (None when absent or not a number)."""
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


class BodyLimit:
    """Raise ``BodyTooLarge`` in the route that reads more than ``limit`` bytes of a body."""

    def __init__(self, app: Any, limit: int = DEFAULT_LIMIT) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        declared, limit, received = declared_length(headers), self.limit, 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` without reading past ``limit`` bytes."""
    declared = declared_length(request.headers)
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
