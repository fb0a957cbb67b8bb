"""Prompts through the official SDK: every operation, sync and async."""

from __future__ import annotations

import pytest
from hume.core.api_error import ApiError

from tests.integration.support import async_client, http, new_account_key, sync_client, unique, validate_spec
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def key(server: ServerProcess) -> str:
    """An account of this module's own, so lists hold only what these tests made."""
    return new_account_key(server, "prompts")


def test_prompt_lifecycle_sync(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("lifecycle")
    v0 = ev.prompts.create_prompt(name=name, text="Version zero.", version_description="first")
    assert v0 is not None
    assert (v0.name, v0.version, v0.text, v0.version_description) == (name, 0, "Version zero.", "first")
    assert v0.version_type == "FIXED"

    v1 = ev.prompts.create_prompt_version(id=v0.id, text="Version one.", version_description="second")
    v2 = ev.prompts.create_prompt_version(id=v0.id, text="Version two.")
    assert v1 is not None and v2 is not None
    assert (v1.id, v1.version, v2.version) == (v0.id, 1, 2)

    got = ev.prompts.get_prompt_version(id=v0.id, version=1)
    assert got is not None and got.text == "Version one." and got.version_description == "second"

    versions = ev.prompts.list_prompt_versions(id=v0.id, restrict_to_most_recent=False)
    assert [p.version for p in versions.prompts_page if p] == [0, 1, 2]
    latest_only = ev.prompts.list_prompt_versions(id=v0.id)
    assert [p.version for p in latest_only.prompts_page if p] == [2]

    # A new name applies to every version.
    renamed = unique("renamed")
    ev.prompts.update_prompt_name(id=v0.id, name=renamed)
    for version in (0, 1, 2):
        found = ev.prompts.get_prompt_version(id=v0.id, version=version)
        assert found is not None and found.name == renamed

    # A description applies to that one version only.
    patched = ev.prompts.update_prompt_description(id=v0.id, version=1, version_description="patched")
    assert patched is not None and patched.version == 1 and patched.version_description == "patched"
    assert patched.text == "Version one."
    v0_again = ev.prompts.get_prompt_version(id=v0.id, version=0)
    v2_again = ev.prompts.get_prompt_version(id=v0.id, version=2)
    assert v0_again is not None and v0_again.version_description == "first"
    assert v2_again is not None and v2_again.version_description is None

    ev.prompts.delete_prompt_version(id=v0.id, version=1)
    with pytest.raises(ApiError) as missing:
        ev.prompts.get_prompt_version(id=v0.id, version=1)
    assert missing.value.status_code == 404
    remaining = ev.prompts.list_prompt_versions(id=v0.id, restrict_to_most_recent=False)
    assert [p.version for p in remaining.prompts_page if p] == [0, 2]

    # The next version number never reuses a deleted one.
    v3 = ev.prompts.create_prompt_version(id=v0.id, text="Version three.")
    assert v3 is not None and v3.version == 3

    ev.prompts.delete_prompt(id=v0.id)
    with pytest.raises(ApiError) as gone:
        ev.prompts.list_prompt_versions(id=v0.id)
    assert gone.value.status_code == 404
    assert [p for p in ev.prompts.list_prompts(name=renamed)] == []


def test_deleting_the_last_version_deletes_the_prompt(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("last-version")
    created = ev.prompts.create_prompt(name=name, text="Only version.")
    assert created is not None
    ev.prompts.delete_prompt_version(id=created.id, version=0)
    assert list(ev.prompts.list_prompts(name=name)) == []
    # The name is free again.
    again = ev.prompts.create_prompt(name=name, text="Reborn.")
    assert again is not None and again.version == 0 and again.id != created.id


async def test_prompt_lifecycle_async(server: ServerProcess, key: str) -> None:
    ev = async_client(server, key).empathic_voice
    name = unique("async")
    v0 = await ev.prompts.create_prompt(name=name, text="Hello.", prompt_expansion={"enabled": True})
    assert v0 is not None and v0.version == 0
    v1 = await ev.prompts.create_prompt_version(id=v0.id, text="Hello again.", version_description="v1")
    assert v1 is not None and v1.version == 1
    got = await ev.prompts.get_prompt_version(id=v0.id, version=0)
    assert got is not None and got.text == "Hello."

    versions = await ev.prompts.list_prompt_versions(id=v0.id, restrict_to_most_recent=False)
    assert [p.version for p in versions.prompts_page if p] == [0, 1]

    renamed = unique("async-renamed")
    await ev.prompts.update_prompt_name(id=v0.id, name=renamed)
    pager = await ev.prompts.list_prompts(name=renamed, restrict_to_most_recent=False)
    assert sorted([(p.name, p.version) async for p in pager if p]) == [(renamed, 0), (renamed, 1)]

    patched = await ev.prompts.update_prompt_description(id=v0.id, version=0, version_description="zero")
    assert patched is not None and patched.version_description == "zero"
    again = await ev.prompts.get_prompt_version(id=v0.id, version=1)
    assert again is not None and again.version_description == "v1"

    await ev.prompts.delete_prompt_version(id=v0.id, version=0)
    await ev.prompts.delete_prompt(id=v0.id)
    with pytest.raises(ApiError) as gone:
        await ev.prompts.get_prompt_version(id=v0.id, version=1)
    assert gone.value.status_code == 404


def test_prompt_names_are_unique_per_account(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("taken")
    first = ev.prompts.create_prompt(name=name, text="First.")
    other = ev.prompts.create_prompt(name=unique("other"), text="Other.")
    assert first is not None and other is not None
    with http(server, key) as raw:
        dup = raw.post("/v0/evi/prompts", json={"name": name, "text": "Second."})
        assert dup.status_code == 400, dup.text
        assert {"error", "message", "code"} <= set(dup.json())
        clash = raw.patch(f"/v0/evi/prompts/{other.id}", json={"name": name})
        assert clash.status_code == 400, clash.text
    # Renaming to its own name is fine; nothing changed by the refusals.
    ev.prompts.update_prompt_name(id=first.id, name=name)
    assert [p.id for p in ev.prompts.list_prompts(name=name) if p] == [first.id]
    still = ev.prompts.get_prompt_version(id=other.id, version=0)
    assert still is not None and still.name == other.name
    # Another account may use the same name.
    elsewhere = sync_client(server).empathic_voice.prompts.create_prompt(name=name, text="Mine.")
    assert elsewhere is not None and elsewhere.id != first.id


def test_list_prompts_paging_and_filters(server: ServerProcess) -> None:
    key = new_account_key(server, "prompt-pages")
    ev = sync_client(server, key).empathic_voice
    ids = []
    for i in range(7):
        p = ev.prompts.create_prompt(name=f"page-{i}", text=f"Prompt {i}.")
        assert p is not None
        ids.append(p.id)
    extra = ev.prompts.create_prompt_version(id=ids[0], text="Prompt 0, v1.")
    assert extra is not None

    first = ev.prompts.list_prompts(page_number=0, page_size=3)
    assert first.response.page_number == 0 and first.response.page_size == 3
    assert first.response.total_pages == 3
    assert [p.id for p in first.response.prompts_page if p] == ids[:3]
    last = ev.prompts.list_prompts(page_number=2, page_size=3)
    assert [p.id for p in last.response.prompts_page if p] == ids[6:]
    beyond = ev.prompts.list_prompts(page_number=5, page_size=3)
    assert beyond.response.prompts_page == [] and beyond.response.total_pages == 3

    # Iterating the pager walks every page; latest versions only by default.
    seen = [(p.id, p.version) for p in ev.prompts.list_prompts(page_size=2) if p]
    assert [i for i, _ in seen] == ids
    assert dict(seen)[ids[0]] == 1

    everything = [(p.id, p.version) for p in ev.prompts.list_prompts(restrict_to_most_recent=False) if p]
    assert len(everything) == 8 and (ids[0], 0) in everything and (ids[0], 1) in everything

    named = [p.id for p in ev.prompts.list_prompts(name="page-4") if p]
    assert named == [ids[4]]
    assert [p for p in ev.prompts.list_prompts(name="no-such-name")] == []

    with http(server, key) as raw:
        body = raw.get("/v0/evi/prompts", params={"page_size": 100}).json()
    validate_spec("return_paged_prompts", body)
    assert body["total_pages"] == 1 and len(body["prompts_page"]) == 7


async def test_list_prompts_async_pager(server: ServerProcess) -> None:
    key = new_account_key(server, "prompt-pages-async")
    ev = async_client(server, key).empathic_voice
    made = []
    for i in range(5):
        p = await ev.prompts.create_prompt(name=f"apage-{i}", text="x")
        assert p is not None
        made.append(p.id)
    pager = await ev.prompts.list_prompts(page_size=2)
    assert [p.id async for p in pager if p] == made
    pages = [page.response.page_number async for page in (await ev.prompts.list_prompts(page_size=2)).iter_pages()]
    assert pages == [0, 1, 2]
