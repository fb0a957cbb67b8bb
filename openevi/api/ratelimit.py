"""Per-account REST request rates: one tenant's flood must not slow the others down.

Each account has token buckets in this process: one for reads (GET, HEAD, OPTIONS), one for writes
(every other method) and one for the bytes of write bodies. A request past its bucket is refused
before its body is read, with 429 `rate_limited`, a `Retry-After` header (whole seconds) and the JSON
error body of every other refusal. A body counts by its declared length, or as it arrives when it has
none (chunked); a body larger than what is left runs the bucket into debt, so any body up to
`OPENEVI_MAX_BODY_BYTES` passes once and the account then waits for the refill.

The buckets live in the process: with several workers or instances (OPENEVI_REDIS_URL) an account
gets the budget once per process. Requests without credentials are not limited here (they are
answered 401, or are public); chat sockets have their own limits (openevi/chat/limits.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openevi.api.deps import get_principal
from openevi.api.errors import ApiError, error_body
from openevi.chat.limits import MessageRate
from openevi.settings import Settings

# How long a refusal is held back at most (the wait it announces, if shorter).
REFUSAL_DELAY_S = 1.0
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Accounts remembered at most; past it the table starts over (a fresh bucket is a full one, so this
# forgets at most one burst per account).
_MAX_ACCOUNTS = 10_000


@dataclass
class _Buckets:
    reads: MessageRate
    writes: MessageRate
    write_bytes: MessageRate


class RestRateLimiter:
    """The per-account buckets. `admit` answers how many seconds a request must wait (0: go on)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._accounts: dict[str, _Buckets] = {}

    def _buckets(self, account_id: str) -> _Buckets:
        buckets = self._accounts.get(account_id)
        if buckets is None:
            if len(self._accounts) >= _MAX_ACCOUNTS:
                self._accounts.clear()
            s = self._settings
            buckets = self._accounts[account_id] = _Buckets(
                MessageRate(s.rest_reads_per_s, s.rest_read_burst, self._clock),
                MessageRate(s.rest_writes_per_s, s.rest_write_burst, self._clock),
                MessageRate(s.rest_write_bytes_per_s, s.rest_write_bytes_burst, self._clock),
            )
        return buckets

    def admit(self, account_id: str, method: str, body_bytes: int) -> float:
        """Charge one request (and `body_bytes` of body for a write); 0.0, or the seconds to wait."""
        s = self._settings
        buckets = self._buckets(account_id)
        if method in READ_METHODS:
            return buckets.reads.spend() if s.rest_reads_per_s else 0.0
        if s.rest_write_bytes_per_s:
            # Bytes first (is a byte left?): a request refused for its bytes must not spend a write.
            wait = buckets.write_bytes.spend(0.0)
            if wait:
                return wait
        if s.rest_writes_per_s:
            wait = buckets.writes.spend()
            if wait:
                return wait
        self.charge_bytes(account_id, body_bytes)
        return 0.0

    def charge_bytes(self, account_id: str, body_bytes: int) -> None:
        """Count body bytes of an admitted write (also those of a chunked body, as they arrive)."""
        if self._settings.rest_write_bytes_per_s and body_bytes:
            self._buckets(account_id).write_bytes.charge(float(body_bytes))


def _declared_length(scope: Scope) -> int | None:
    length = next((value for name, value in scope.get("headers", []) if name == b"content-length"), None)
    return int(length) if length is not None and length.isdigit() else None


class RestRateLimit:
    """ASGI middleware applying `RestRateLimiter` to authenticated HTTP requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        limiter: RestRateLimiter | None = getattr(request.app.state, "rest_rate_limiter", None)
        if limiter is None:  # not started yet
            await self.app(scope, receive, send)
            return
        try:
            principal = await get_principal(request)
        except ApiError:  # no or bad credentials: the route answers (401) or serves a public page
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        declared = _declared_length(scope)
        wait = limiter.admit(principal.account_id, method, declared or 0)
        if wait:
            await self._refuse(wait, scope, receive, send)
            return
        if declared is not None or method in READ_METHODS:
            await self.app(scope, receive, send)
            return
        account = principal.account_id

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                limiter.charge_bytes(account, len(message.get("body", b"")))
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(wait: float, scope: Scope, receive: Receive, send: Send) -> None:
        # The refusal itself waits (at most REFUSAL_DELAY_S): a client that ignores Retry-After and
        # asks again at once would otherwise make the server answer thousands of refusals a second.
        await asyncio.sleep(min(wait, REFUSAL_DELAY_S))
        seconds = max(1, math.ceil(wait))
        body = error_body(429, "rate_limited", f"Too many requests for this account; retry in {seconds} s")
        response = JSONResponse(body, status_code=429, headers={"Retry-After": str(seconds)})
        await response(scope, receive, send)
