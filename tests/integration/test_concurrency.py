"""Concurrent writers through the async SDK: version numbers and names never collide."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.support import async_client, new_account_key, unique
from tests.server import ServerProcess


async def test_concurrent_versions_get_distinct_numbers(server: ServerProcess) -> None:
    ev = async_client(server).empathic_voice
    prompt = await ev.prompts.create_prompt(name=unique("race"), text="v0")
    assert prompt is not None
    made = await asyncio.gather(*(ev.prompts.create_prompt_version(id=prompt.id, text=f"v{i}") for i in range(1, 11)))
    assert sorted(p.version for p in made if p) == list(range(1, 11))
    versions = await ev.prompts.list_prompt_versions(id=prompt.id, restrict_to_most_recent=False, page_size=100)
    stored = {p.version: p.text for p in versions.prompts_page if p}
    assert sorted(stored) == list(range(11))
    assert {p.version: p.text for p in made if p} == {v: t for v, t in stored.items() if v}


async def test_concurrent_creates_with_one_name_make_one_resource(server: ServerProcess) -> None:
    key = new_account_key(server, "race")
    name = unique("same")
    async with httpx.AsyncClient(base_url=server.base_url, headers={"X-Hume-Api-Key": key}, timeout=30) as raw:
        responses = await asyncio.gather(
            *(raw.post("/v0/evi/configs", json={"name": name, "evi_version": "3"}) for _ in range(8))
        )
        assert sorted(r.status_code for r in responses) == [201] + [400] * 7
        listed = (await raw.get("/v0/evi/configs", params={"name": name})).json()["configs_page"]
    assert len(listed) == 1
