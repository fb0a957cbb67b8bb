"""Fixtures shared by unit tests that use a real database or the scripted model server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.server import database_url_for_tests
from tests.support.database import migrated
from tests.support.scripted_llm import ScriptedLLM


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A fresh database: SQLite, or PostgreSQL when OPENEVI_TEST_POSTGRES_URL names a server."""
    return database_url_for_tests() or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on `database_url`, migrated to head."""
    async with migrated(database_url) as made:
        yield made


@pytest.fixture(scope="module")
def scripted_llm() -> Iterator[ScriptedLLM]:
    """One scripted OpenAI-style model server per test module."""
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def scripted(scripted_llm: ScriptedLLM) -> ScriptedLLM:
    """The module's scripted model with no rules and no recorded requests."""
    scripted_llm.script()
    scripted_llm.clear()
    return scripted_llm
