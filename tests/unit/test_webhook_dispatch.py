"""The webhook dispatcher: retries follow the documented schedule (checked on an injected clock), a
receiver that never answers does not hold up other tenants, and URLs the outbound policy refuses fail
at once with a clear reason and no connection.

Receivers are real HTTP servers on 127.0.0.1; the refused destinations resolve through a stub resolver
and the network layer under the guard is a recorder, so no packet leaves loopback.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.net.clients import GuardedTransport
from openevi.net.outbound import IPAddress, OutboundPolicy
from openevi.settings import Settings
from openevi.store import accounts
from openevi.store.db import new_id, now_ms, transaction
from openevi.store.models import WebhookDelivery
from openevi.webhooks import dispatcher as dispatcher_module
from openevi.webhooks.dispatcher import WebhookDispatcher
from openevi.webhooks.outbox import chat_started_payload, enqueue, next_attempt_at
from tests.server import free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler
from tests.support.waiting import wait_for

WAIT_S = 60.0  # an upper bound for a slow machine, never an expectation


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)


async def add_deliveries(
    factory: async_sessionmaker[AsyncSession], account_id: str, url: str, count: int = 1
) -> list[str]:
    ids: list[str] = []
    async with transaction(factory) as s:
        before = set((await s.scalars(select(WebhookDelivery.id))).all())
        for _ in range(count):
            payload = chat_started_payload(
                chat_group_id=new_id(),
                chat_id=new_id(),
                config_id=None,
                start_time_ms=1,
                chat_start_type="new_chat_group",
            )
            await enqueue(
                s,
                account_id=account_id,
                chat_id=payload["chat_id"],
                webhooks=[{"url": url, "events": ["chat_started"]}],
                event_name="chat_started",
                payload=payload,
            )
        ids = [i for i in (await s.scalars(select(WebhookDelivery.id))).all() if i not in before]
    return ids


async def new_account(factory: async_sessionmaker[AsyncSession], name: str) -> str:
    async with transaction(factory) as s:
        return await accounts.create_account(s, name=name)


async def row(factory: async_sessionmaker[AsyncSession], delivery_id: str) -> WebhookDelivery:
    async with factory() as s:
        found = await s.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


# --- retry schedule --------------------------------------------------------------------------------


def test_next_attempt_counts_from_the_end_of_the_failed_attempt() -> None:
    mid = [next_attempt_at(1_000_000, n, base_s=1, max_s=300, rand=lambda: 0.5) for n in range(1, 11)]
    assert [t - 1_000_000 for t in mid] == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000]
    assert next_attempt_at(5_000, 3, base_s=0.5, max_s=300, rand=lambda: 0.0) == 5_000 + 1_600  # 2 s - 20 %
    assert next_attempt_at(5_000, 3, base_s=0.5, max_s=300, rand=lambda: 1.0) == 5_000 + 2_400  # 2 s + 20 %


class FakeClock:
    """Unix milliseconds that only move when the test (or the fake receiver) moves them."""

    def __init__(self) -> None:
        self.now = now_ms() + 60_000  # rows enqueued just now are due

    def __call__(self) -> int:
        return self.now


async def test_retries_follow_the_documented_schedule(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession]
) -> None:
    clock = FakeClock()
    attempt_ms = 7_000  # each failing attempt "takes" 7 s of fake time
    seen_at: list[int] = []

    def failing(request: httpx.Request) -> httpx.Response:
        seen_at.append(clock.now)
        clock.now += attempt_ms
        return httpx.Response(500, text="nope")

    transport = httpx.MockTransport(failing)
    d = WebhookDispatcher(
        factory,
        settings(tmp_path, webhook_max_attempts=8, webhook_backoff_base_s=1, webhook_backoff_max_s=300),
        clock=clock,
        rand=lambda: 0.5,  # no jitter: the schedule is exact
        transport=transport,
    )
    account = await new_account(factory, "schedule")
    [delivery_id] = await add_deliveries(factory, account, "https://hooks.example/h")
    expected_gaps_s = [1, 2, 4, 8, 16, 32, 64]  # docs/webhooks.md: base · 2^(n-1) after failed attempt n
    async with httpx.AsyncClient(transport=transport) as client:
        for attempt in range(1, 9):
            due = (await row(factory, delivery_id)).next_attempt_at
            clock.now = due - 1
            assert await d._claim_due(10) == []  # not before it is due
            assert await d._seconds_until_next_due() == pytest.approx(min(d._poll_s, 0.001))
            clock.now = due
            [item] = await d._claim_due(10)
            assert item.attempts == attempt
            await d._deliver(client, item)
            after = await row(factory, delivery_id)
            if attempt < 8:
                assert after.status == "PENDING" and after.claimed_by is None
                gap_ms = after.next_attempt_at - clock.now  # clock.now: when the attempt ended
                assert gap_ms == expected_gaps_s[attempt - 1] * 1000
    final = await row(factory, delivery_id)
    assert final.status == "FAILED" and final.attempts == 8 and final.last_status_code == 500
    # Attempt n+1 started exactly its backoff after attempt n ended.
    gaps = [(b - a - attempt_ms) // 1000 for a, b in itertools.pairwise(seen_at)]
    assert gaps == expected_gaps_s


async def test_the_loop_sleeps_exactly_until_the_next_retry(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession]
) -> None:
    clock = FakeClock()
    transport = httpx.MockTransport(lambda r: httpx.Response(503))
    d = WebhookDispatcher(
        factory,
        settings(tmp_path, webhook_poll_interval_s=1000, webhook_backoff_base_s=4),
        clock=clock,
        rand=lambda: 0.5,
        transport=transport,
    )
    account = await new_account(factory, "wake")
    await add_deliveries(factory, account, "https://hooks.example/w")
    async with httpx.AsyncClient(transport=transport) as client:
        [item] = await d._claim_due(10)
        clock.now += 250
        await d._deliver(client, item)
    clock.now += 1000
    # Due 4 s after the failure; 1 s has passed: the dispatcher wakes in 3 s, not at the next poll.
    assert await d._seconds_until_next_due() == pytest.approx(3.0)


# --- fairness ----------------------------------------------------------------------------------------


class Receivers:
    """/slow/… never answers (until released); /fast/… answers 200 at once. Records arrivals in order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.release = threading.Event()
        self.arrivals: list[str] = []
        self.answered: list[str] = []
        self._lock = threading.Lock()
        receivers = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receivers._lock:
                    receivers.arrivals.append(self.path)
                if self.path.startswith("/slow"):
                    receivers.release.wait(WAIT_S)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receivers._lock:
                    receivers.answered.append(self.path)

        self.server = http_stub.serve(self.port, Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for p in self.arrivals if p.startswith(prefix))

    def stop(self) -> None:
        self.release.set()
        http_stub.stop(self.server)


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.stop()


async def test_a_receiver_that_never_answers_does_not_delay_another_tenant(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], receivers: Receivers
) -> None:
    config = settings(
        tmp_path,
        outbound_allow="127.0.0.1/32",
        webhook_timeout_s=30,  # far longer than the test: tenant A's attempts stay in flight throughout
        webhook_poll_interval_s=0.05,
    )
    d = WebhookDispatcher(factory, config)
    tenant_a = await new_account(factory, "tenant-a")
    tenant_b = await new_account(factory, "tenant-b")
    a_ids = await add_deliveries(factory, tenant_a, receivers.url("/slow/a"), count=60)
    d.start()
    try:
        # Tenant A's stuck attempts are in flight before B's event even exists.
        await wait_for(lambda: receivers.count("/slow") >= 1, "tenant A's first attempt")
        [b_id] = await add_deliveries(factory, tenant_b, receivers.url("/fast/b"))
        d.notify()
        await wait_for(lambda: _status(factory, b_id, "DELIVERED"), "tenant B's delivery")
        # B was delivered while every one of A's deliveries was still waiting on the first answer.
        a_rows = [await row(factory, i) for i in a_ids]
        assert all(r.status == "PENDING" and r.last_error is None for r in a_rows)
        assert not any(p.startswith("/slow") for p in receivers.answered)
        # One destination holds at most its per-destination share of the slots.
        assert 1 <= receivers.count("/slow") <= dispatcher_module.PER_DESTINATION
        assert sum(1 for r in a_rows if r.attempts == 1) <= dispatcher_module.PER_DESTINATION
        # When A's receiver recovers, all of A's deliveries go out.
        receivers.release.set()
        await wait_for(
            lambda: _all_status(factory, a_ids, "DELIVERED"),
            "tenant A's deliveries after the receiver recovers",
        )
    finally:
        receivers.release.set()
        await d.stop()


async def test_the_age_of_the_oldest_pending_delivery_is_measured(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], receivers: Receivers
) -> None:
    def oldest() -> float | None:
        return REGISTRY.get_sample_value("openevi_webhook_queue_oldest_seconds")

    tenant = await new_account(factory, "queue-age")
    [delivery] = await add_deliveries(factory, tenant, receivers.url("/slow/age"))
    created = (await row(factory, delivery)).created_at
    ticks = itertools.count()
    # The dispatcher's clock: 42 s after the delivery was queued, moving 10 ms per reading.
    config = settings(tmp_path, outbound_allow="127.0.0.1/32", webhook_poll_interval_s=0.05)
    d = WebhookDispatcher(factory, config, clock=lambda: created + 42_000 + 10 * next(ticks))
    d.start()
    try:
        await wait_for(lambda: receivers.count("/slow/age") == 1, "the stuck attempt")
        await wait_for(lambda: (oldest() or 0) >= 42, "the pending delivery's age")
        receivers.release.set()
        await wait_for(lambda: _status(factory, delivery, "DELIVERED"), "the delivery")
        await wait_for(lambda: oldest() == 0, "an empty queue")
    finally:
        receivers.release.set()
        await d.stop()


async def test_several_hostile_accounts_leave_slots_for_a_healthy_tenant(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], receivers: Receivers
) -> None:
    """Four accounts with hanging receivers (each on several URLs, so the per-destination limit does
    not cap them) used to take all 64 slots: a healthy tenant's webhook waited for a timeout (68.8 s)."""
    config = settings(tmp_path, outbound_allow="127.0.0.1/32", webhook_timeout_s=30, webhook_poll_interval_s=0.05)
    d = WebhookDispatcher(factory, config)
    hostile_ids: list[str] = []
    for n in range(5):
        account = await new_account(factory, f"hostile-{n}")
        for u in range(5):
            hostile_ids += await add_deliveries(factory, account, receivers.url(f"/slow/{n}/{u}"), count=4)
    healthy = await new_account(factory, "healthy")
    d.start()
    try:
        cap = dispatcher_module.MAX_IN_FLIGHT - dispatcher_module.RESERVED
        await wait_for(lambda: receivers.count("/slow") >= cap, "the hostile accounts' attempts")
        [healthy_id] = await add_deliveries(factory, healthy, receivers.url("/fast/healthy"))
        d.notify()
        await wait_for(lambda: _status(factory, healthy_id, "DELIVERED"), "the healthy tenant's delivery")
        rows = [await row(factory, i) for i in hostile_ids]
        assert all(r.status == "PENDING" and r.last_error is None for r in rows)  # none timed out yet
        assert not any(p.startswith("/slow") for p in receivers.answered)
        # Past the shared part, each account only gets its guaranteed few: slots stay free for others.
        assert receivers.count("/slow") <= cap + 5 * dispatcher_module.GUARANTEED < dispatcher_module.MAX_IN_FLIGHT
    finally:
        receivers.release.set()
        await d.stop()


async def _status(factory: async_sessionmaker[AsyncSession], delivery_id: str, status: str) -> bool:
    return (await row(factory, delivery_id)).status == status


async def _all_status(factory: async_sessionmaker[AsyncSession], ids: list[str], status: str) -> bool:
    async with factory() as s:
        statuses = (await s.scalars(select(WebhookDelivery.status).where(WebhookDelivery.id.in_(ids)))).all()
    return len(statuses) == len(ids) and set(statuses) == {status}


# --- outbound policy ---------------------------------------------------------------------------------


class NoNetwork(httpcore.AsyncNetworkBackend):
    """The layer under the guard: records any connect and never makes one."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("no network in this test")


async def stub_resolver(host: str, port: int) -> list[IPAddress]:
    table = {"hooks.internal.test": "10.0.0.1", "metadata.test": "169.254.169.254", "sneaky.test": "::ffff:127.0.0.1"}
    return [ipaddress.ip_address(table[host])]


async def deliver_once(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], url: str
) -> tuple[WebhookDelivery, NoNetwork]:
    """One attempt at a delivery to `url` through the guard over a network that never connects."""
    network = NoNetwork()
    transport = GuardedTransport(OutboundPolicy(resolver=stub_resolver), inner=network)
    d = WebhookDispatcher(factory, settings(tmp_path, webhook_max_attempts=5), transport=transport)
    account = await new_account(factory, "tenant")
    [delivery_id] = await add_deliveries(factory, account, url)
    async with httpx.AsyncClient(transport=transport) as client:
        [item] = await d._claim_due(10)
        await d._deliver(client, item)
    return await row(factory, delivery_id), network


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.internal.test/h", "private"),
        ("https://metadata.test/latest", "link-local"),
        ("https://sneaky.test/h", "loopback"),
        ("https://[::ffff:127.0.0.1]/h", "loopback"),
        ("https://2130706433/h", "loopback"),
        ("http://10.1.2.3:8080/h", "private"),
    ],
)
async def test_refused_webhook_urls_fail_at_once_without_connecting(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], url: str, reason: str
) -> None:
    failed, network = await deliver_once(tmp_path, factory, url)
    assert failed.status == "FAILED" and failed.attempts == 1  # policy: no retries
    assert failed.last_error and reason in failed.last_error and "OPENEVI_OUTBOUND_ALLOW" in failed.last_error
    assert failed.last_status_code is None and network.hosts == []


@pytest.mark.parametrize("url", ["https://0177.0.0.1/h", "https://127.000.000.001/h", "https://\u0661\u0662\u0667.0.0.1/h"])
async def test_a_stored_url_the_client_cannot_parse_fails_once_not_forever(
    tmp_path: Path, factory: async_sessionmaker[AsyncSession], url: str
) -> None:
    """Such URLs crashed the attempt, so the claim expired and the row was retried forever (98
    attempts with a maximum of 8). Now it fails at once, with the reason, and nothing connects."""
    failed, network = await deliver_once(tmp_path, factory, url)
    assert failed.status == "FAILED" and failed.attempts == 1
    assert failed.last_error and "invalid webhook URL" in failed.last_error
    assert network.hosts == []
