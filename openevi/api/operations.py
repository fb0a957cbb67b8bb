"""What operators and load balancers read: `/metrics`, `/readyz`, and the HTTP request metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openevi import metrics, tracing

log = logging.getLogger("openevi.api.operations")

UNMATCHED_ROUTE = "other"  # a path no route matched: never the raw path (unbounded label values)


class HttpTelemetry:
    """Counts and times every HTTP request by route template (`/v0/evi/chats/{id}`) and status class,
    in a span that continues the caller's trace (`traceparent`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # unless a response starts: the app raised

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
        method = scope.get("method", "GET")
        with tracing.server_span(method, headers) as span:
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or UNMATCHED_ROUTE
                metrics.http_request(template, status, time.monotonic() - started)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    tracing.failed(span, f"HTTP {status}")


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


readiness_router = APIRouter()
CHECK_TIMEOUT_S = 2.0


@readiness_router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """200 when this instance should get traffic: not draining, and its database, bus and storage answer."""
    state = request.app.state
    if state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)

    async def database() -> None:
        async with state.db() as s:
            await s.execute(text("SELECT 1"))

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "database": database,
        "bus": state.bus.check,
        "storage": state.recording_store.check,
    }
    results = await asyncio.gather(*(_check(name, check) for name, check in checks.items()))
    ready = all(results)
    words = {name: "ok" if ok else "unreachable" for name, ok in zip(checks, results, strict=True)}
    body = {"status": "ready" if ready else "unavailable", "checks": words}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _check(name: str, check: Callable[[], Awaitable[None]]) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except Exception as exc:  # the reason goes to the log, not to an unauthenticated caller
        log.warning("readiness: %s unreachable: %s", name, exc)
        return False
    return True
