"""`GET /metrics`: Prometheus' text format for the people on call (``notifier.metrics``).

Owns exposing the metrics and who may read them: the same bearer-token mechanism as the
alert webhook (``Authorization: Bearer <token>``, the token from the environment variable
``[serve].metrics_token_env`` names; checked before anything is collected). Without a token
configured the endpoint answers 503 saying which variable to set. ``[serve].metrics_listen``
serves the same metrics without a token on a separate address (an internal interface the
Prometheus server scrapes) from ``notifier serve`` instead (``web.metrics.serve_plain``).
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.engine import Engine

from notifier.metrics import REGISTRY, OutboxCollector

router = APIRouter(tags=["metrics"])


def registry_for(engine: Engine) -> CollectorRegistry:
    """This process's counters plus the database's numbers for ``engine``, read at each scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Both(engine))
    return registry


class _Both:
    def __init__(self, engine: Engine) -> None:
        self.database = OutboxCollector(engine)

    def collect(self):  # type: ignore[no-untyped-def]
        yield from REGISTRY.collect()
        yield from self.database.collect()


def exposition(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    config = request.app.state.config
    expected = os.environ.get(config.serve.metrics_token_env, "").strip()
    if not expected:
        raise HTTPException(
            503, f"/metrics is off here: set the environment variable {config.serve.metrics_token_env} to a token "
            "(or scrape [serve].metrics_listen)",
        )  # fmt: skip
    given = (authorization or "").removeprefix("Bearer ").strip() if (authorization or "").startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "A valid 'Authorization: Bearer <token>' header is required.",
                            {"WWW-Authenticate": "Bearer"})  # fmt: skip
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = registry_for(request.app.state.engine)
    return exposition(registry)
