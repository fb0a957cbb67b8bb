"""`store.fast_reads.fetch_all` on SQLite: the rows SQLAlchemy's own execution returns (with the
statement's own constants, JSON paths among them, converted), inside the session's transaction,
and a refusal of statements that are re-rendered at each execution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.schemas.rest import PostedConfig
from openevi.services import configs
from openevi.store import accounts, config_reads, resources
from openevi.store.db import transaction
from openevi.store.fast_reads import fetch_all
from openevi.store.models import ResourceHead
from tests.support.database import migrated


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}") as made:
        yield made


async def _config(s: AsyncSession, account: str, name: str) -> str:
    prompt = await resources.create(
        s, account_id=account, kind="prompt", name=f"p-{name}", body={"text": name}, version_description=None
    )
    posted = PostedConfig.model_validate({"name": name, "evi_version": "3", "prompt": {"id": prompt.id}})
    view = await configs.create_config(s, posted, account_id=account, allow_http_webhooks=False)
    return str(view["id"])


async def test_rows_match_sqlalchemy_execution(factory: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(factory) as s:
        account = await accounts.create_account(s, name="a")
        ids = [await _config(s, account, f"c{i}") for i in range(3)]
    cases: list[tuple[Any, dict[str, Any]]] = [
        (config_reads._page("sqlite", True, False, False), {"account_id": account, "offset": 1, "limit": 2}),
        (
            config_reads._page("sqlite", False, True, False),
            {"account_id": account, "offset": 0, "limit": 5, "name": "c2"},
        ),
        (config_reads._one_version("sqlite", False), {"account_id": account, "id": ids[0], "version": 0}),
        (config_reads._one_version("sqlite", True), {"account_id": account, "id": ids[1]}),
    ]
    async with factory() as s:
        for statement, params in cases:
            expected = [tuple(row) for row in (await s.execute(statement, params)).all()]
            assert expected  # each case finds rows: the config and its prompt
            assert [tuple(row) for row in await fetch_all(s, statement, params)] == expected


async def test_reads_inside_the_sessions_transaction(factory: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(factory) as s:
        account = await accounts.create_account(s, name="a")
    statement = config_reads._one_version("sqlite", True)
    async with transaction(factory) as s:
        config_id = await _config(s, account, "uncommitted")
        rows = await fetch_all(s, statement, {"account_id": account, "id": config_id})
        assert [row[0] for row in rows if row[-1] == "config"] == [config_id]
        await s.rollback()
    async with factory() as s:
        assert await fetch_all(s, statement, {"account_id": account, "id": config_id}) == []


async def test_statements_rendered_at_each_execution_are_refused(factory: async_sessionmaker[AsyncSession]) -> None:
    expanding = select(ResourceHead.id).where(ResourceHead.kind.in_(bindparam("kinds", expanding=True)))
    async with factory() as s:
        with pytest.raises(ValueError, match="rendered anew"):
            await fetch_all(s, expanding, {"kinds": ["prompt"]})
