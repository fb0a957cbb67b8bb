"""Engine, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# A pooled server connection idle longer than this is pinged before use (see ping_when_idle).
PING_AFTER_IDLE_S = 5.0


def now_ms() -> int:
    """Current time in epoch milliseconds (the unit of every stored timestamp)."""
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def create_engine(url: str, *, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout; a server database's
    pooled connections are pinged after `ping_after_idle_s` idle (ping_when_idle)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, json_deserializer=json_loads, hide_parameters=True
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=20, json_deserializer=json_loads, hide_parameters=True)
    ping_when_idle(engine, ping_after_idle_s)
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "before_cursor_execute", _postgres_text_without_nul, retval=True)
    return engine


def json_loads(text: str | bytes) -> Any:
    """JSON columns decoded with orjson (asyncpg otherwise decodes them with the json module, several
    times slower); what orjson refuses (NaN, integers beyond 64 bits) takes the json module's path."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Ping a pooled connection before use only when it sat idle in the pool for over `idle_s`.

    `pool_pre_ping` pings on every checkout: on asyncpg that is BEGIN, `;` and ROLLBACK, three round
    trips before each request's own. Connections go stale while idle (a database restart, an idle
    timeout in between), so those are the ones checked; a dead one is replaced before the request
    sees it. A connection that died while in steady use fails its request once, and SQLAlchemy then
    invalidates the whole pool (a disconnect error), so the next requests get fresh connections."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned <= idle_s:
            return  # new, or back in the pool only briefly
        try:
            dbapi_conn.ping()
        except Exception as exc:
            # The pool discards this connection and checks out another (a fresh one if need be).
            raise DisconnectionError("pooled connection failed its ping") from exc


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _postgres_text_without_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
) -> tuple[str, Any]:
    """PostgreSQL text cannot hold NUL (SQLite can): a NUL in any bound string would fail the whole
    statement (a 500 for `name="a\\u0000"` or an id with `%00`). Store and look up U+FFFD instead."""

    def clean(params: Any) -> Any:
        if isinstance(params, dict):
            return {k: _without_nul(v) for k, v in params.items()}
        if isinstance(params, (list, tuple)):
            return type(params)(_without_nul(v) for v in params)
        return params

    if executemany and isinstance(parameters, (list, tuple)):
        return statement, type(parameters)(clean(p) for p in parameters)
    return statement, clean(parameters)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read. On a server database they run in autocommit: a read of
    one statement is atomic by itself, and the BEGIN and ROLLBACK around it would be two more round
    trips per request (each statement of a session sees its own snapshot in READ COMMITTED anyway).
    SQLite already reads outside a transaction (pysqlite begins one only before a write), and
    switching its isolation level would cost a round trip to aiosqlite's thread at each checkout."""
    if engine.dialect.name == "sqlite":
        return session_factory(engine)
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Apply all Alembic migrations (idempotent; run at every start)."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), "head")

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error."""
    async with factory() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # pysqlite only sends BEGIN before the first INSERT/UPDATE/DELETE, so a SAVEPOINT issued
            # earlier (begin_nested after a SELECT) became the outermost transaction and its RELEASE
            # committed at once: a later failure could not roll it back. Begin explicitly, taking the
            # write lock up front so a read-then-write unit never fails on a stale snapshot.
            await session.execute(text("BEGIN IMMEDIATE"))
        yield session
