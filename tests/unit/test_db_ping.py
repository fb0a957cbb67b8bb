"""Pooled PostgreSQL connections killed under the server (what a database restart does to them):
a connection that sat idle is pinged and replaced before use, and one used again at once fails
that one request only. Runs when OPENEVI_TEST_POSTGRES_URL names a server (SQLite has no server
connections to lose)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from openevi.store.db import create_engine
from tests.server import POSTGRES_URL_ENV, database_url_for_tests

POOLED = 3


@pytest.fixture(params=["postgresql"] if os.environ.get(POSTGRES_URL_ENV) else [])  # .ci/run: PostgreSQL pass
async def database(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    url = await asyncio.to_thread(database_url_for_tests)
    assert url is not None
    yield url


async def _fill_pool(engine: AsyncEngine) -> set[int]:
    """POOLED connections opened at once and returned to the pool; their backend pids."""
    conns = [await engine.connect() for _ in range(POOLED)]
    pids = {int((await c.execute(text("SELECT pg_backend_pid()"))).scalar_one()) for c in conns}
    for c in conns:
        await c.close()
    return pids


async def _kill(url: str, pids: set[int]) -> None:
    """Terminate the backends, as a server restart would, and wait until they are gone."""
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
        for _ in range(500):
            alive = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids))
            if alive == 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backends {pids} still alive")
    finally:
        await admin.close()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_idle_dead_connections_are_replaced_before_use(database: str) -> None:
    engine = create_engine(database, ping_after_idle_s=0.0)  # every pooled connection counts as idle
    try:
        pids = await _fill_pool(engine)
        await _kill(database, pids)
        for _ in range(POOLED + 1):  # each pooled connection fails its ping and is replaced
            assert await _backend(engine) not in pids
    finally:
        await engine.dispose()


async def test_connections_in_steady_use_fail_one_request_then_recover(database: str) -> None:
    engine = create_engine(database, ping_after_idle_s=3600.0)  # never pinged
    try:
        pids = await _fill_pool(engine)
        await _kill(database, pids)
        with pytest.raises(DBAPIError) as failed:
            await _backend(engine)
        assert failed.value.connection_invalidated
        # The disconnect invalidated the whole pool: the other dead connections are not handed out.
        for _ in range(POOLED + 1):
            assert await _backend(engine) not in pids
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("idle_s", "pings"), [(3600.0, 0), (0.0, 5)])
async def test_only_idle_connections_are_pinged(
    database: str, idle_s: float, pings: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database, ping_after_idle_s=idle_s)
    seen = 0
    try:
        await _backend(engine)  # one connection, now in the pool
        async with engine.connect() as conn:
            adapted: Any = type((await conn.get_raw_connection()).dbapi_connection)
        ping = adapted.ping

        def counted(self: Any) -> None:
            nonlocal seen
            seen += 1
            ping(self)

        monkeypatch.setattr(adapted, "ping", counted)
        for _ in range(5):  # the pooled connection, taken and returned five times
            await _backend(engine)
        assert seen == pings
    finally:
        await engine.dispose()
