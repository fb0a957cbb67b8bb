"""Delivers the webhook outbox: claim due rows, POST them signed, record the outcome, retry with backoff.

Claiming is safe with many instances on one database. A worker claims a due row with a conditional
UPDATE (`status = 'PENDING' AND next_attempt_at <= now`) that pushes `next_attempt_at` forward by a
lease and records `claimed_by`; only one UPDATE can win. On PostgreSQL the candidate SELECT also uses
`FOR UPDATE SKIP LOCKED`, so competing workers pick different rows instead of colliding. If a worker
dies mid-delivery its lease simply runs out and the row is due again, so deliveries survive crashes and
restarts (at-least-once; receivers de-duplicate by the `X-Openevi-Delivery-Id` header).

Fairness: every claimed row is delivered by its own task, and the loop claims again as soon as a slot
frees, so nothing waits for a batch to finish. One destination URL has at most `PER_DESTINATION`
attempts in flight and one account at most `PER_ACCOUNT`; rows beyond those limits are not claimed
(their lease would tick while they wait), so a receiver that never answers only slows itself. An
account's attempts beyond its first `GUARANTEED` are only started while more than `RESERVED` slots
stay free: several hostile accounts together (four used to hold all 64 slots with hanging receivers
and delay a healthy tenant by a whole timeout) leave those slots to accounts with nothing in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from opentelemetry.trace import SpanKind
from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi import __version__, metrics, tracing
from openevi.net.clients import GuardedTransport
from openevi.net.outbound import OutboundPolicy, OutboundRefused
from openevi.periodic import cancel_and_wait
from openevi.settings import Settings
from openevi.store.db import now_ms, transaction
from openevi.store.models import WebhookDelivery
from openevi.webhooks.outbox import DELIVERED, FAILED, JITTER, PENDING, backoff_s, next_attempt_at
from openevi.webhooks.signing import account_signing_secret, signature_headers

__all__ = ["JITTER", "WebhookDispatcher", "backoff_s"]

log = logging.getLogger("openevi.webhooks")
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])

DELIVERY_ID_HEADER = "X-Openevi-Delivery-Id"
EVENT_HEADER = "X-Openevi-Event"
MAX_IN_FLIGHT = 64  # attempts in flight per instance
PER_DESTINATION = 4  # per webhook URL
PER_ACCOUNT = 16
GUARANTEED = 2  # attempts per account that may use the reserved slots
RESERVED = 16  # slots kept for accounts with fewer than GUARANTEED attempts in flight
CANDIDATES = 128  # due rows looked at per claim
ERROR_TEXT_LIMIT = 500
ERROR_BODY_BYTES = 200  # of a non-2xx answer, kept in last_error


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
    """One background loop per instance that hands due outbox rows to per-delivery tasks.

    `clock` (Unix ms), `rand` (jitter) and `transport` are for tests; by default connections go through
    the outbound policy of `settings.outbound_allow`, because webhook URLs are the tenants'.
    """

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        clock: Callable[[], int] = now_ms,
        rand: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._factory = factory
        self._max_attempts = settings.webhook_max_attempts
        self._poll_s = settings.webhook_poll_interval_s
        self._timeout_s = settings.webhook_timeout_s
        self._base_s = settings.webhook_backoff_base_s
        self._cap_s = settings.webhook_backoff_max_s
        self._clock = clock
        self._rand = rand
        # Parsed now so a malformed OPENEVI_OUTBOUND_ALLOW stops the server at start-up.
        self._policy = OutboundPolicy.from_setting(settings.outbound_allow)
        self._transport = transport
        # A claim must outlive the longest attempt, or another worker would re-send it while in flight.
        self._lease_ms = int((2 * self._timeout_s + 5) * 1000)
        self.worker_id = _worker_id()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._secrets: dict[str, str] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_url: Counter[str] = Counter()
        self._per_account: Counter[str] = Counter()
        self._measured_at = float("-inf")  # when the queue's age was last measured (clock ms)

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
            for attempt in list(self._in_flight):
                attempt.cancel()
            await cancel_and_wait(self._task)
        finally:
            self._task = None

    def notify(self) -> None:
        """Look for due deliveries now (call after committing an enqueue in this process)."""
        self._wake.set()

    async def _run(self) -> None:
        transport = self._transport or GuardedTransport(
            self._policy,
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT // 4),
        )
        async with httpx.AsyncClient(
            transport=transport,
            timeout=self._timeout_s,
            follow_redirects=False,  # a redirect is not a delivery; the receiver must answer 2xx itself
            headers={"User-Agent": f"openevi-webhooks/{__version__}"},
        ) as client:
            try:
                while not self._stopping.is_set():
                    # Cleared before looking, so a notify() or a finished attempt that lands meanwhile
                    # still wakes the wait below.
                    self._wake.clear()
                    try:
                        await self._measure_queue()
                        free = MAX_IN_FLIGHT - len(self._in_flight)
                        claimed = await self._claim_due(free) if free > 0 else []
                        for item in claimed:
                            self._spawn(client, item)
                        if claimed:
                            continue  # more rows may be due, for destinations with free slots
                        # With every slot taken, the next wake-up is a finished attempt.
                        delay = await self._seconds_until_next_due() if free > 0 else self._poll_s
                    except Exception:
                        log.exception("webhook dispatch loop error; retrying after the poll interval")
                        delay = self._poll_s
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
            finally:
                if self._in_flight:
                    await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _spawn(self, client: httpx.AsyncClient, item: _Claimed) -> None:
        self._per_url[item.url] += 1
        self._per_account[item.account_id] += 1
        task = asyncio.create_task(self._deliver_safely(client, item), name=f"webhook-{item.id}")
        self._in_flight.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._in_flight.discard(done)
            self._per_url -= Counter({item.url: 1})  # Counter subtraction drops keys that reach zero
            self._per_account -= Counter({item.account_id: 1})
            self._wake.set()  # a slot is free: rows held back by the limits may be claimed now

        task.add_done_callback(finished)

    async def _deliver_safely(self, client: httpx.AsyncClient, item: _Claimed) -> None:
        try:
            await self._deliver(client, item)
        except Exception:
            # The claim expires and the row is retried; never let one delivery stop the loop.
            log.exception("webhook delivery %s crashed", item.id)

    @staticmethod
    def _account_full(in_flight: int, busy: int) -> bool:
        """Whether an account with `in_flight` attempts may not start another while `busy` slots are taken."""
        return in_flight >= PER_ACCOUNT or (in_flight >= GUARANTEED and MAX_IN_FLIGHT - busy <= RESERVED)

    def _held_back(self, query: SelectT) -> SelectT:
        """`query` without rows of destinations and accounts already at their in-flight limit."""
        full_urls = [url for url, n in self._per_url.items() if n >= PER_DESTINATION]
        busy = len(self._in_flight)
        full_accounts = [account for account, n in self._per_account.items() if self._account_full(n, busy)]
        if full_urls:
            query = query.where(WebhookDelivery.url.not_in(full_urls))
        if full_accounts:
            query = query.where(WebhookDelivery.account_id.not_in(full_accounts))
        return query

    async def _claim_due(self, limit: int) -> list[_Claimed]:
        """Claim up to `limit` due rows, oldest first, within the per-destination and per-account limits."""
        now = self._clock()
        lease_until = now + self._lease_ms
        per_url = Counter(self._per_url)
        per_account = Counter(self._per_account)
        claimed: list[_Claimed] = []
        async with self._factory() as session, session.begin():
            candidates = await session.execute(
                self._held_back(
                    select(WebhookDelivery.id, WebhookDelivery.url, WebhookDelivery.account_id).where(
                        WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now
                    )
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(CANDIDATES)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite ignores it and relies on the UPDATE
            )
            for delivery_id, url, account_id in candidates.all():
                if len(claimed) >= limit:
                    break
                busy = len(self._in_flight) + len(claimed)
                if per_url[url] >= PER_DESTINATION or self._account_full(per_account[account_id], busy):
                    continue
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
                    per_url[url] += 1
                    per_account[account_id] += 1
        return claimed

    async def _measure_queue(self) -> None:
        """openevi_webhook_queue_oldest_seconds, at most once per poll interval (busy or idle)."""
        now = self._clock()
        if now - self._measured_at < self._poll_s * 1000:
            return
        self._measured_at = now
        async with self._factory() as session:
            oldest = await session.scalar(
                select(func.min(WebhookDelivery.created_at)).where(WebhookDelivery.status == PENDING)
            )
        metrics.webhook_queue_oldest(0.0 if oldest is None else (now - int(oldest)) / 1000)

    async def _seconds_until_next_due(self) -> float:
        async with self._factory() as session:
            next_at = await session.scalar(
                self._held_back(
                    select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.status == PENDING)
                )
            )
        if next_at is None:
            return self._poll_s
        # Poll at least every interval anyway: other instances enqueue without notifying us.
        return min(self._poll_s, max(0.0, (int(next_at) - self._clock()) / 1000))

    async def _secret(self, account_id: str) -> str:
        secret = self._secrets.get(account_id)
        if secret is None:
            async with transaction(self._factory) as session:
                secret = await account_signing_secret(session, account_id)
            self._secrets[account_id] = secret
        return secret

    async def _deliver(self, client: httpx.AsyncClient, item: _Claimed) -> None:
        attributes = {"openevi.webhook.event": item.event_name, "openevi.webhook.delivery_id": item.id}
        with tracing.span("webhook_delivery", kind=SpanKind.CLIENT, **attributes) as span:
            error = await self._attempt(client, item)
            if error is not None:
                tracing.failed(span, error)

    async def _attempt(self, client: httpx.AsyncClient, item: _Claimed) -> str | None:
        body = item.payload.encode()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_ID_HEADER: item.id,
            EVENT_HEADER: item.event_name,
            **signature_headers(await self._secret(item.account_id), body),
        }
        tracing.inject(headers)  # the receiver's trace continues from this delivery
        status_code: int | None = None
        error: str | None = None
        refused = False
        try:
            # httpx's timeout is per phase; this bounds the whole attempt so it ends well inside the lease.
            async with asyncio.timeout(self._timeout_s):
                async with client.stream("POST", item.url, content=body, headers=headers) as response:
                    status_code = response.status_code
                    if not 200 <= status_code < 300:
                        error = f"HTTP {status_code}: {await _start_of(response)}"
        except OutboundRefused as exc:
            # Policy, not a network failure: retrying cannot help, so the delivery fails now.
            error, refused = str(exc), True
        except httpx.InvalidURL as exc:
            # Stored before the URL was checked at config time (`0177.0.0.1`): it never becomes valid.
            error, refused = f"invalid webhook URL: {exc}", True
        except TimeoutError:
            error = f"timed out after {self._timeout_s:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._record(item, status_code, error, final=refused)
        return error

    async def _record(self, item: _Claimed, status_code: int | None, error: str | None, *, final: bool) -> None:
        now = self._clock()
        values: dict[str, object] = {"claimed_by": None, "last_status_code": status_code}
        if error is None:
            values.update(status=DELIVERED, delivered_at=now, last_error=None)
            metrics.webhook_delivery("delivered")
        elif final or item.attempts >= self._max_attempts:
            values.update(status=FAILED, last_error=error[:ERROR_TEXT_LIMIT])
            log.warning("webhook %s to %s failed after %d attempts: %s", item.id, item.url, item.attempts, error)
            metrics.webhook_delivery("failed")
        else:
            metrics.webhook_delivery("retry")
            retry_at = next_attempt_at(now, item.attempts, base_s=self._base_s, max_s=self._cap_s, rand=self._rand)
            values.update(next_attempt_at=retry_at, last_error=error[:ERROR_TEXT_LIMIT])
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


async def _start_of(response: httpx.Response) -> str:
    """The first bytes of a response body, without reading the rest (a receiver may send a lot)."""
    start = b""
    async for chunk in response.aiter_bytes():
        start += chunk
        if len(start) >= ERROR_BODY_BYTES:
            break
    return start[:ERROR_BODY_BYTES].decode("utf-8", "replace")
