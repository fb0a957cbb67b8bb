"""Delivers the webhook outbox: claim due rows, POST them signed, record the outcome, retry with backoff.

Claiming is safe with many instances on one database. A worker claims a due row with a conditional
UPDATE (`status = 'PENDING' AND next_attempt_at <= now`) that pushes `next_attempt_at` forward by a
lease and records `claimed_by`; only one UPDATE can win. On PostgreSQL the candidate SELECT also uses
`FOR UPDATE SKIP LOCKED`, so competing workers pick different rows instead of colliding. If a worker
dies mid-delivery its lease simply runs out and the row is due again, so deliveries survive crashes and
restarts (at-least-once; receivers de-duplicate by the `X-Openevi-Delivery-Id` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi import __version__
from openevi.settings import Settings
from openevi.store.db import now_ms, transaction
from openevi.store.models import WebhookDelivery
from openevi.webhooks.outbox import DELIVERED, FAILED, PENDING
from openevi.webhooks.signing import account_signing_secret, signature_headers

log = logging.getLogger("openevi.webhooks")

DELIVERY_ID_HEADER = "X-Openevi-Delivery-Id"
EVENT_HEADER = "X-Openevi-Event"
BATCH_SIZE = 32
MAX_CONCURRENCY = 16
ERROR_TEXT_LIMIT = 500
JITTER = 0.2  # ±20%: spreads retries of many deliveries yet keeps consecutive delays strictly increasing


def backoff_s(
    attempts: int, *, base_s: float, max_s: float, jitter: float = JITTER, rand: Callable[[], float] = random.random
) -> float:
    """Delay before the next try after `attempts` failed tries: base·2^(attempts-1), capped, ± jitter."""
    raw = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    return max(0.0, raw * (1 + jitter * (2 * rand() - 1)))


@dataclass(frozen=True)
class _Claimed:
    id: str
    account_id: str
    url: str
    event_name: str
    payload: str
    attempts: int


def _worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookDispatcher:
    """One background task per instance that delivers due outbox rows."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._factory = factory
        self._max_attempts = settings.webhook_max_attempts
        self._poll_s = settings.webhook_poll_interval_s
        self._timeout_s = settings.webhook_timeout_s
        self._base_s = settings.webhook_backoff_base_s
        self._cap_s = settings.webhook_backoff_max_s
        # A claim must outlive the longest attempt, or another worker would re-send it while in flight.
        self._lease_ms = int((2 * self._timeout_s + 5) * 1000)
        self.worker_id = _worker_id()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._secrets: dict[str, str] = {}

    def start(self) -> None:
        """Start the delivery loop on the running event loop."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Finish in-flight attempts (bounded by the timeout), then stop; unfinished claims expire and retry."""
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self._timeout_s + 2)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._task = None

    def notify(self) -> None:
        """Look for due deliveries now (call after committing an enqueue in this process)."""
        self._wake.set()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=MAX_CONCURRENCY)
        async with httpx.AsyncClient(
            timeout=self._timeout_s,
            follow_redirects=False,  # a redirect is not a delivery; the receiver must answer 2xx itself
            limits=limits,
            headers={"User-Agent": f"openevi-webhooks/{__version__}"},
        ) as client:
            while not self._stopping.is_set():
                # Cleared before looking, so a notify() that lands while we query still wakes the sleep below.
                self._wake.clear()
                try:
                    claimed = await self._claim_due()
                    if claimed:
                        await self._deliver_all(client, claimed)
                        continue  # there may be more due rows than one batch
                    delay = await self._seconds_until_next_due()
                except Exception:
                    log.exception("webhook dispatch loop error; retrying after the poll interval")
                    delay = self._poll_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _claim_due(self) -> list[_Claimed]:
        now = now_ms()
        lease_until = now + self._lease_ms
        claimed: list[_Claimed] = []
        async with self._factory() as session, session.begin():
            candidates = await session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite ignores it and relies on the UPDATE
            )
            for delivery_id in candidates.all():
                result = await session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .values(
                        next_attempt_at=lease_until,
                        claimed_by=self.worker_id,
                        attempts=WebhookDelivery.attempts + 1,
                    )
                    .returning(
                        WebhookDelivery.account_id,
                        WebhookDelivery.url,
                        WebhookDelivery.event_name,
                        WebhookDelivery.payload,
                        WebhookDelivery.attempts,
                    )
                )
                row = result.first()
                if row is not None:  # None: another worker claimed it between our SELECT and UPDATE
                    claimed.append(_Claimed(delivery_id, row[0], row[1], row[2], row[3], row[4]))
        return claimed

    async def _seconds_until_next_due(self) -> float:
        async with self._factory() as session:
            next_at = await session.scalar(
                select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.status == PENDING)
            )
        if next_at is None:
            return self._poll_s
        # Poll at least every interval anyway: other instances enqueue without notifying us.
        return min(self._poll_s, max(0.0, (int(next_at) - now_ms()) / 1000))

    async def _deliver_all(self, client: httpx.AsyncClient, claimed: list[_Claimed]) -> None:
        gate = asyncio.Semaphore(MAX_CONCURRENCY)

        async def one(item: _Claimed) -> None:
            async with gate:
                try:
                    await self._deliver(client, item)
                except Exception:
                    # The claim expires and the row is retried; never let one delivery stop the loop.
                    log.exception("webhook delivery %s crashed", item.id)

        await asyncio.gather(*(one(item) for item in claimed))

    async def _secret(self, account_id: str) -> str:
        secret = self._secrets.get(account_id)
        if secret is None:
            async with transaction(self._factory) as session:
                secret = await account_signing_secret(session, account_id)
            self._secrets[account_id] = secret
        return secret

    async def _deliver(self, client: httpx.AsyncClient, item: _Claimed) -> None:
        body = item.payload.encode()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_ID_HEADER: item.id,
            EVENT_HEADER: item.event_name,
            **signature_headers(await self._secret(item.account_id), body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            # httpx's timeout is per phase; this bounds the whole attempt so it ends well inside the lease.
            async with asyncio.timeout(self._timeout_s):
                response = await client.post(item.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except TimeoutError:
            error = f"timed out after {self._timeout_s:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._record(item, status_code, error)

    async def _record(self, item: _Claimed, status_code: int | None, error: str | None) -> None:
        now = now_ms()
        values: dict[str, object] = {"claimed_by": None, "last_status_code": status_code}
        if error is None:
            values.update(status=DELIVERED, delivered_at=now, last_error=None)
        elif item.attempts >= self._max_attempts:
            values.update(status=FAILED, last_error=error[:ERROR_TEXT_LIMIT])
            log.warning("webhook %s to %s failed after %d attempts: %s", item.id, item.url, item.attempts, error)
        else:
            delay = backoff_s(item.attempts, base_s=self._base_s, max_s=self._cap_s)
            values.update(next_attempt_at=now + int(delay * 1000), last_error=error[:ERROR_TEXT_LIMIT])
        async with self._factory() as session, session.begin():
            # Fenced on our claim: if our lease ran out and another worker took the row, its result wins.
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == item.id,
                    WebhookDelivery.claimed_by == self.worker_id,
                    WebhookDelivery.status == PENDING,
                )
                .values(**values)
            )
