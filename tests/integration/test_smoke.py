"""The official SDK reaches the server and the basics hold."""

from __future__ import annotations

from hume import AsyncHumeClient, HumeClient

from tests.server import ServerProcess


def test_sync_client_creates_and_reads_prompt(server: ServerProcess) -> None:
    client = HumeClient(api_key=server.api_key, base_url=server.base_url)
    created = client.empathic_voice.prompts.create_prompt(name="smoke-sync", text="Be brief.")
    assert created is not None and created.version == 0
    fetched = client.empathic_voice.prompts.get_prompt_version(id=created.id, version=0)
    assert fetched is not None and fetched.text == "Be brief."


async def test_async_client_lists_configs(server: ServerProcess) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    cfg = await client.empathic_voice.configs.create_config(name="smoke-async", evi_version="3")
    assert cfg is not None
    page = await client.empathic_voice.configs.list_configs(name="smoke-async")
    names = [c.name async for c in page]
    assert names == ["smoke-async"]
