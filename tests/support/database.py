"""A migrated database for tests that use the store directly (no server process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.store.db import create_engine, migrate, session_factory


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the database at `url`, migrated to head first; the engine is disposed afterwards."""
    engine = create_engine(url)
    await migrate(engine)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
