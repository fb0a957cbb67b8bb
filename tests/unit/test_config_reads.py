"""The one-statement config reads (`store/config_reads.py` via `services.configs.load_config` and
`load_config_page`) on a real database: FIXED and LATEST references, deleted versions, paging and
tenancy, each checked against expected values and against the two-step path (`resources.get_version`
/ `list_page` + `render_configs`). SQLite, and PostgreSQL too when OPENEVI_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.schemas.rest import PostedConfig
from openevi.services import configs
from openevi.store import accounts, resources
from openevi.store.db import create_engine, migrate, session_factory, transaction
from openevi.store.errors import NotFoundError
from tests.server import POSTGRES_URL_ENV, database_url_for_tests

PARAMS = json.dumps({"type": "object", "properties": {"q": {"type": "string"}}})


@dataclass
class World:
    factory: async_sessionmaker[AsyncSession]
    a: str  # account ids
    b: str
    prompt: str  # account a's: prompt v0..v2 (v2 deleted), tools t (v0 deleted, v1) and u (v0)
    t: str
    u: str
    c1: str  # prompt FIXED 0, tools t FIXED 0 and u LATEST; version 1: prompt FIXED 1
    c2: str  # prompt LATEST, tool t LATEST
    c3: str  # nothing referenced
    cb: str  # account b's config whose stored body names account a's prompt and tool


async def _config(s: AsyncSession, account: str, name: str, **refs: Any) -> str:
    posted = PostedConfig.model_validate({"name": name, "evi_version": "3", **refs})
    view = await configs.create_config(s, posted, account_id=account, allow_http_webhooks=False)
    return str(view["id"])


@pytest.fixture(params=["sqlite", *(["postgresql"] if os.environ.get(POSTGRES_URL_ENV) else [])])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    url = await asyncio.to_thread(database_url_for_tests) if request.param == "postgresql" else sqlite
    assert url is not None
    engine = create_engine(url)
    await migrate(engine)
    factory = session_factory(engine)
    async with transaction(factory) as s:
        a = await accounts.create_account(s, name="a")
        b = await accounts.create_account(s, name="b")

        def body(text: str) -> dict[str, Any]:
            return {"text": text, "prompt_expansion": None}

        prompt = (
            await resources.create(s, account_id=a, kind="prompt", name="p", body=body("v0"), version_description="d0")
        ).id
        for text in ("v1", "v2"):
            await resources.create_version(
                s, account_id=a, kind="prompt", resource_id=prompt, body=body(text), version_description=None
            )
        tool_body = {"parameters": PARAMS, "description": "t0", "fallback_content": None}
        t = (
            await resources.create(s, account_id=a, kind="tool", name="t", body=tool_body, version_description=None)
        ).id
        await resources.create_version(
            s,
            account_id=a,
            kind="tool",
            resource_id=t,
            body={**tool_body, "description": "t1"},
            version_description=None,
        )
        u = (
            await resources.create(
                s,
                account_id=a,
                kind="tool",
                name="u",
                body={**tool_body, "description": "u0"},
                version_description=None,
            )
        ).id
        c1 = await _config(s, a, "c1", prompt={"id": prompt, "version": 0}, tools=[{"id": t, "version": 0}, {"id": u}])
        c2 = await _config(s, a, "c2", prompt={"id": prompt}, tools=[{"id": t}])
        c3 = await _config(s, a, "c3")
        await configs.create_config_version(
            s,
            PostedConfig.model_validate({"name": "c1", "evi_version": "3", "prompt": {"id": prompt, "version": 1}}),
            account_id=a,
            config_id=c1,
            allow_http_webhooks=False,
        )
        stored = await resources.get_version(s, account_id=a, kind="config", resource_id=c2, version=0)
        cb = (
            await resources.create(
                s, account_id=b, kind="config", name="cb", body=stored.body, version_description=None
            )
        ).id
        await resources.delete_version(s, account_id=a, kind="prompt", resource_id=prompt, version=2)
        await resources.delete_version(s, account_id=a, kind="tool", resource_id=t, version=0)
    try:
        yield World(factory, a, b, prompt, t, u, c1, c2, c3, cb)
    finally:
        await engine.dispose()


def _refs(view: dict[str, Any]) -> tuple[Any, list[Any]]:
    prompt = view.get("prompt")
    shown = (prompt["version"], prompt["text"], prompt["version_type"]) if prompt else None
    return shown, [(t["name"], t["version"], t["description"], t["version_type"]) for t in view["tools"]]


async def _two_step(s: AsyncSession, account: str, config_id: str, version: int | None) -> dict[str, Any]:
    found = await resources.get_version(s, account_id=account, kind="config", resource_id=config_id, version=version)
    return (await configs.render_configs(s, account_id=account, configs=[found]))[0]


async def test_fixed_latest_and_deleted_references(world: World) -> None:
    async with world.factory() as s:
        views = {
            (cid, v): await configs.load_config(s, account_id=world.a, config_id=cid, version=v)
            for cid, v in ((world.c1, 0), (world.c1, 1), (world.c1, None), (world.c2, 0), (world.c3, 0))
        }
        for (cid, v), view in views.items():
            assert view == await _two_step(s, world.a, cid, v)
    # FIXED v0 stays v0; LATEST is v1 since v2 was deleted; the deleted FIXED tool version is left out.
    assert _refs(views[(world.c1, 0)]) == ((0, "v0", "FIXED"), [("u", 0, "u0", "LATEST")])
    assert _refs(views[(world.c1, 1)]) == ((1, "v1", "FIXED"), [])
    assert views[(world.c1, None)]["version"] == 1
    assert _refs(views[(world.c2, 0)]) == ((1, "v1", "LATEST"), [("t", 1, "t1", "LATEST")])
    assert _refs(views[(world.c3, 0)]) == (None, []) and "prompt" not in views[(world.c3, 0)]


async def test_references_resolve_only_inside_the_callers_account(world: World) -> None:
    async with world.factory() as s:
        view = await configs.load_config(s, account_id=world.b, config_id=world.cb, version=0)
        assert _refs(view) == (None, [])  # a's prompt and tool stay invisible to b
        assert view == await _two_step(s, world.b, world.cb, 0)
        for account, config_id, version in (
            (world.b, world.c1, 0),  # another account's config
            (world.a, world.cb, 0),
            (world.a, world.c1, 2),  # no such version
            (world.a, world.c1, 2**40),  # beyond the column's range
            (world.a, world.prompt, 0),  # not a config
        ):
            with pytest.raises(NotFoundError):
                await configs.load_config(s, account_id=account, config_id=config_id, version=version)


async def test_pages_match_the_two_step_path(world: World) -> None:
    async with world.factory() as s:
        cases: list[dict[str, Any]] = [
            {"page_number": 0, "page_size": 2, "restrict_to_most_recent": True},
            {"page_number": 1, "page_size": 2, "restrict_to_most_recent": True},
            {"page_number": 5, "page_size": 2, "restrict_to_most_recent": True},  # past the end
            {"page_number": 0, "page_size": 10, "restrict_to_most_recent": False},
            {"page_number": 0, "page_size": 10, "restrict_to_most_recent": False, "resource_id": world.c1},
            {"page_number": 0, "page_size": 10, "restrict_to_most_recent": True, "name": "c2"},
        ]
        for case in cases:
            views, total = await configs.load_config_page(s, account_id=world.a, **case)
            items, expected_total = await resources.list_page(s, account_id=world.a, kind="config", **case)
            assert (views, total) == (
                await configs.render_configs(s, account_id=world.a, configs=items),
                expected_total,
            )
        first, total = await configs.load_config_page(
            s, account_id=world.a, page_number=0, page_size=2, restrict_to_most_recent=True
        )
        assert [(v["name"], v["version"]) for v in first] == [("c1", 1), ("c2", 0)] and total == 3
        past_the_end, total = await configs.load_config_page(
            s, account_id=world.a, page_number=5, page_size=2, restrict_to_most_recent=True
        )
        assert past_the_end == [] and total == 3  # counted separately: no row carries the window count
        every, total = await configs.load_config_page(
            s, account_id=world.a, page_number=0, page_size=10, restrict_to_most_recent=False
        )
        assert [(v["name"], v["version"]) for v in every] == [("c1", 0), ("c1", 1), ("c2", 0), ("c3", 0)]
        assert total == 4
        theirs, total = await configs.load_config_page(
            s, account_id=world.b, page_number=0, page_size=10, restrict_to_most_recent=True
        )
        assert [v["id"] for v in theirs] == [world.cb] and total == 1
