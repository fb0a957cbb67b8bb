"""Tools through the official SDK: every operation, sync and async."""

from __future__ import annotations

import json

import pytest
from hume.core.api_error import ApiError

from tests.integration.support import (
    assert_validation_error,
    async_client,
    http,
    new_account_key,
    sync_client,
    unique,
    validate_spec,
)
from tests.server import ServerProcess

WEATHER = json.dumps(
    {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["location"],
    }
)
EMPTY = json.dumps({"type": "object", "properties": {}})


def tool_name() -> str:
    return unique("tool").replace("-", "_")


def test_tool_lifecycle_sync(server: ServerProcess) -> None:
    ev = sync_client(server).empathic_voice
    name = tool_name()
    v0 = ev.tools.create_tool(
        name=name,
        parameters=WEATHER,
        description="Weather at a place",
        fallback_content="Weather is unavailable",
        version_description="first",
    )
    assert v0 is not None
    assert (v0.name, v0.version, v0.tool_type, v0.version_type) == (name, 0, "FUNCTION", "FIXED")
    assert json.loads(v0.parameters) == json.loads(WEATHER)
    assert v0.description == "Weather at a place" and v0.fallback_content == "Weather is unavailable"

    v1 = ev.tools.create_tool_version(id=v0.id, parameters=EMPTY, description="No arguments")
    assert v1 is not None and v1.version == 1 and v1.description == "No arguments"
    got = ev.tools.get_tool_version(id=v0.id, version=0)
    assert got is not None and got.description == "Weather at a place"

    all_versions = [t.version for t in ev.tools.list_tool_versions(id=v0.id, restrict_to_most_recent=False) if t]
    assert all_versions == [0, 1]
    latest = [t.version for t in ev.tools.list_tool_versions(id=v0.id) if t]
    assert latest == [1]

    renamed = tool_name()
    ev.tools.update_tool_name(id=v0.id, name=renamed)
    assert {t.name for t in ev.tools.list_tool_versions(id=v0.id, restrict_to_most_recent=False) if t} == {renamed}

    patched = ev.tools.update_tool_description(id=v0.id, version=0, version_description="patched")
    assert patched is not None and patched.version_description == "patched"
    other = ev.tools.get_tool_version(id=v0.id, version=1)
    assert other is not None and other.version_description is None

    ev.tools.delete_tool_version(id=v0.id, version=0)
    with pytest.raises(ApiError) as missing:
        ev.tools.get_tool_version(id=v0.id, version=0)
    assert missing.value.status_code == 404
    ev.tools.delete_tool(id=v0.id)
    assert list(ev.tools.list_tools(name=renamed)) == []
    with pytest.raises(ApiError) as gone:
        ev.tools.delete_tool(id=v0.id)
    assert gone.value.status_code == 404


async def test_tool_lifecycle_async(server: ServerProcess) -> None:
    ev = async_client(server).empathic_voice
    name = tool_name()
    v0 = await ev.tools.create_tool(name=name, parameters=WEATHER)
    assert v0 is not None and v0.version == 0
    v1 = await ev.tools.create_tool_version(id=v0.id, parameters=WEATHER, fallback_content="sorry")
    assert v1 is not None and v1.version == 1 and v1.fallback_content == "sorry"
    listed = await ev.tools.list_tools(name=name, restrict_to_most_recent=False)
    assert [t.version async for t in listed if t] == [0, 1]
    versions = await ev.tools.list_tool_versions(id=v0.id, page_size=1, restrict_to_most_recent=False)
    assert [t.version async for t in versions if t] == [0, 1]
    await ev.tools.update_tool_name(id=v0.id, name=name + "_x")
    got = await ev.tools.get_tool_version(id=v0.id, version=1)
    assert got is not None and got.name == name + "_x"
    patched = await ev.tools.update_tool_description(id=v0.id, version=1, version_description="d")
    assert patched is not None and patched.version_description == "d"
    await ev.tools.delete_tool_version(id=v0.id, version=1)
    await ev.tools.delete_tool(id=v0.id)
    with pytest.raises(ApiError) as gone:
        await ev.tools.get_tool_version(id=v0.id, version=0)
    assert gone.value.status_code == 404


def test_tool_names_are_unique_per_account(server: ServerProcess) -> None:
    ev = sync_client(server).empathic_voice
    name = tool_name()
    first = ev.tools.create_tool(name=name, parameters=EMPTY)
    assert first is not None
    with http(server) as raw:
        dup = raw.post("/v0/evi/tools", json={"name": name, "parameters": EMPTY})
        assert dup.status_code == 400, dup.text
    assert [t.id for t in ev.tools.list_tools(name=name) if t] == [first.id]


def test_list_tools_paging(server: ServerProcess) -> None:
    key = new_account_key(server, "tool-pages")
    ev = sync_client(server, key).empathic_voice
    made = []
    for i in range(5):
        t = ev.tools.create_tool(name=f"tool_{i}", parameters=EMPTY)
        assert t is not None
        made.append(t.id)
    page = ev.tools.list_tools(page_number=1, page_size=2)
    assert page.response.total_pages == 3 and [t.id for t in page.response.tools_page if t] == made[2:4]
    assert [t.id for t in ev.tools.list_tools(page_size=2) if t] == made
    assert [t.id for t in ev.tools.list_tools(name="tool_3") if t] == [made[3]]
    with http(server, key) as raw:
        body = raw.get("/v0/evi/tools", params={"page_size": 3}).json()
    validate_spec("return_paged_user_defined_tools", body)


@pytest.mark.parametrize(
    "parameters",
    [
        "not json",
        "[1, 2]",
        '"a string"',
        json.dumps({"type": "string"}),
        json.dumps({"type": "object", "properties": 5}),
        json.dumps({"type": 12}),
    ],
)
def test_tool_parameters_must_be_a_json_schema_object(server: ServerProcess, parameters: str) -> None:
    name = tool_name()
    with http(server) as raw:
        detail = assert_validation_error(raw.post("/v0/evi/tools", json={"name": name, "parameters": parameters}))
        assert any("parameters" in d["loc"] for d in detail), detail
        assert raw.get("/v0/evi/tools", params={"name": name}).json()["tools_page"] == []

        made = raw.post("/v0/evi/tools", json={"name": name, "parameters": EMPTY})
        assert made.status_code == 201, made.text
        tool_id = made.json()["id"]
        assert_validation_error(raw.post(f"/v0/evi/tools/{tool_id}", json={"parameters": parameters}))
        versions = raw.get(f"/v0/evi/tools/{tool_id}", params={"restrict_to_most_recent": False}).json()
        assert [t["version"] for t in versions["tools_page"]] == [0]
