"""`openevi import` reading (pages, single objects, lists; order; duplicates; embedded copies) and the
store-level refusals (names, kinds, gaps, the version counter) on a real SQLite database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.services import transfer
from openevi.store import resources
from openevi.store.db import transaction
from tests.support.database import migrated

P1 = "11111111-1111-4111-8111-111111111111"
T1 = "22222222-2222-4222-8222-222222222222"
C1 = "33333333-3333-4333-8333-333333333333"
C2 = "44444444-4444-4444-8444-444444444444"
PARAMS = json.dumps({"type": "object", "properties": {"q": {"type": "string"}}})


def prompt(version: int, text: str = "Be brief.", **extra: Any) -> dict[str, Any]:
    return {
        "id": P1,
        "version": version,
        "version_type": "FIXED",
        "version_description": f"v{version}",
        "name": "greeter",
        "created_on": 1_700_000_000_000,
        "modified_on": 1_700_000_000_000 + version,
        "text": text,
        **extra,
    }


def tool(version: int) -> dict[str, Any]:
    return {
        "tool_type": "FUNCTION",
        "id": T1,
        "version": version,
        "version_type": "FIXED",
        "version_description": None,
        "name": "lookup",
        "created_on": 1_700_000_000_000,
        "modified_on": 1_700_000_000_000 + version,
        "parameters": PARAMS,
        "description": "Look it up",
        "fallback_content": None,
    }


def config(version: int, config_id: str = C1, **extra: Any) -> dict[str, Any]:
    return {
        "id": config_id,
        "version": version,
        "version_description": None,
        "name": f"phone-{config_id[:4]}",
        "created_on": 1_700_000_000_000,
        "modified_on": 1_700_000_000_000 + version,
        "evi_version": "3",
        "prompt": prompt(1),
        "tools": [tool(0)],
        "builtin_tools": [{"tool_type": "BUILTIN", "name": "hang_up", "fallback_content": None}],
        **extra,
    }


def page(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"page_number": 0, "page_size": 10, "total_pages": 1, key: items}


def keys(parsed: transfer.Parsed) -> list[tuple[str, str, int]]:
    return [(i.kind, i.id, i.version) for i in parsed.items]


def test_pages_single_objects_and_lists_come_out_prompts_tools_configs_by_version() -> None:
    parsed = transfer.parse_documents(
        [
            ("configs.json", page("configs_page", [config(1), config(0)])),
            ("one-tool.json", tool(1)),
            ("list.json", [page("prompts_page", [prompt(2), prompt(1)]), tool(0), prompt(0)]),
        ]
    )
    assert parsed.refused == []
    assert keys(parsed) == [
        ("prompt", P1, 0),
        ("prompt", P1, 1),
        ("prompt", P1, 2),
        ("tool", T1, 0),
        ("tool", T1, 1),
        ("config", C1, 0),
        ("config", C1, 1),
    ]
    assert not any(i.embedded for i in parsed.items)  # the configs' copies were given on their own too
    assert [i.source for i in parsed.items][-1] == "configs.json.configs_page[0]"


def test_a_combined_export_document_holds_all_three_pages() -> None:
    combined = {**page("prompts_page", [prompt(0)]), "tools_page": [tool(0)], "configs_page": None}
    assert keys(transfer.parse_documents([("all.json", combined)])) == [("prompt", P1, 0), ("tool", T1, 0)]


def test_configs_alone_bring_the_prompt_and_tool_versions_they_embed() -> None:
    parsed = transfer.parse_documents([("configs.json", page("configs_page", [config(0)]))])
    assert keys(parsed) == [("prompt", P1, 1), ("tool", T1, 0), ("config", C1, 0)]
    assert [i.embedded for i in parsed.items] == [True, True, False]
    # A reference without the embedded text is not a prompt copy: nothing is made up.
    bare = config(0, prompt={"id": P1, "version": 1}, tools=[])
    assert keys(transfer.parse_documents([("c.json", bare)])) == [("config", C1, 0)]


def test_the_same_version_twice_counts_once_and_a_different_copy_is_refused() -> None:
    sdk_dump = {**prompt(0), "prompt_expansion": None}  # SDK dumps keep null fields; same content
    edited = prompt(0, text="Someone changed this.")
    parsed = transfer.parse_documents([("a.json", prompt(0)), ("b.json", sdk_dump), ("c.json", edited)])
    assert keys(parsed) == [("prompt", P1, 0)]
    assert parsed.items[0].source == "a.json"
    [refused] = parsed.refused
    assert (refused.kind, refused.id, refused.version, refused.source) == ("prompt", P1, 0, "c.json")
    assert "differs from the copy of the same version in a.json" in refused.reason


def test_an_embedded_copy_never_wins_over_the_version_itself() -> None:
    stale = config(0, prompt=prompt(1, text="An older copy."))
    parsed = transfer.parse_documents([("configs.json", stale), ("prompts.json", [prompt(1)])])
    assert parsed.refused == []
    [chosen] = [i for i in parsed.items if i.kind == "prompt"]
    assert chosen.data["text"] == "Be brief." and not chosen.embedded


def test_unreadable_entries_are_refused_with_where_they_are() -> None:
    parsed = transfer.parse_documents(
        [
            ("x.json", [prompt(0, id="not-a-uuid"), {"hello": 1}, "text", {**prompt(0), "version": "1"}]),
            ("y.json", {"tools_page": {"id": T1}}),
        ]
    )
    assert parsed.items == []
    assert [(o.source, o.reason) for o in parsed.refused] == [
        ("x.json[0]", "id must be a UUID, in lower case as the API returns it"),
        ("x.json[1]", "not a prompt, tool or config (no text, parameters or evi_version)"),
        ("x.json[2]", "expected a JSON object or list, found str"),
        ("x.json[3]", "version must be an integer from 0"),
        ("y.json.tools_page", "a page's entries must be a list"),
    ]


def test_config_fields_turn_a_returned_config_back_into_its_references() -> None:
    latest = config(2, prompt={**prompt(3), "version_type": "LATEST"}, tools=[{**tool(1), "version_type": "LATEST"}])
    fields = transfer.config_fields(latest)
    assert fields["prompt"] == {"id": P1, "version": None}
    assert fields["tools"] == [{"id": T1, "version": None}]
    assert fields["builtin_tools"] == [{"name": "hang_up", "fallback_content": None}]
    assert transfer.config_fields(config(0))["prompt"] == {"id": P1, "version": 1}


# --- against a database ----------------------------------------------------------------------


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'transfer.db'}") as made:
        yield made


async def run_import(factory: async_sessionmaker[AsyncSession], *documents: Any) -> transfer.Report:
    parsed = transfer.parse_documents((f"doc{i}", d) for i, d in enumerate(documents))
    async with transaction(factory) as s:
        account = await transfer.account_for(s, None)
    return await transfer.import_items(factory, parsed, account_id=account, allow_http_webhooks=False)


async def test_gaps_are_kept_and_the_counter_ends_at_the_highest_version(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    report = await run_import(factory, [prompt(3), prompt(0)])
    assert [(o.action, o.version) for o in report.outcomes] == [("created", 0), ("created", 3)]
    async with transaction(factory) as s:
        account = await transfer.account_for(s, None)
        head = await resources.head(s, account_id=account, kind="prompt", resource_id=P1)
        assert head.last_version == 3 and head.created_on == 1_700_000_000_000
        made = await resources.create_version(
            s, account_id=account, kind="prompt", resource_id=P1, body={"text": "x"}, version_description=None
        )
    assert made.version == 4
    # Filling the gap later is allowed (the number was never used here); the counter stays.
    report = await run_import(factory, prompt(1))
    assert [o.action for o in report.outcomes] == ["created"]


async def test_names_kinds_and_contents_are_never_taken_over(factory: async_sessionmaker[AsyncSession]) -> None:
    assert (await run_import(factory, prompt(0))).clean
    other_greeter = {**prompt(0), "id": C2}
    as_tool = {**tool(0), "id": P1}
    report = await run_import(factory, other_greeter, as_tool, prompt(0, text="Changed."))
    reasons = {(o.kind, o.id): (o.action, o.reason) for o in report.outcomes}
    assert reasons[("prompt", C2)] == ("refused", "this account already has another prompt named 'greeter'")
    assert reasons[("tool", P1)] == ("refused", "this id is already used by a prompt")
    assert reasons[("prompt", P1)] == ("conflict", "version 0 is already stored with other content; not overwritten")
    assert not report.clean


async def test_a_config_whose_tool_was_refused_says_why(factory: async_sessionmaker[AsyncSession]) -> None:
    bad_tool = {**tool(0), "parameters": "not json"}
    report = await run_import(factory, prompt(1), bad_tool, config(0, tools=[bad_tool]))
    by_kind = {o.kind: o for o in report.outcomes}
    assert by_kind["prompt"].action == "created"
    assert by_kind["tool"].action == "refused" and "parameters" in by_kind["tool"].reason
    assert by_kind["config"].action == "refused"
    assert f"refers to tool {T1} (version 0), which is neither in the import nor in this account" in (
        by_kind["config"].reason
    )
    assert "that tool version was refused" in by_kind["config"].reason
    assert report.lines()[-1] == "created 1, skipped 0, refused 2, conflicts 0"


async def test_a_large_import_lets_other_writers_in_between_its_batches(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    """60,000 prompts used to be one transaction: SQLite's write lock was held for minutes and the
    server's own writes failed with "database is locked". Batches commit one by one, and a writer
    that arrives meanwhile is served before the import ends."""
    import asyncio
    import uuid

    documents = [{**prompt(0), "id": str(uuid.UUID(int=i + 1, version=4)), "name": f"p{i}"} for i in range(300)]
    parsed = transfer.parse_documents([("big", documents)])
    async with transaction(factory) as s:
        account = await transfer.account_for(s, None)
    order: list[str] = []

    async def importing() -> None:
        report = await transfer.import_items(
            factory, parsed, account_id=account, allow_http_webhooks=False, batch_versions=50
        )
        assert report.count("created") == 300
        order.append("import")

    async def other_writer() -> None:
        await asyncio.sleep(0.05)  # lets the import start; the order below is what is checked
        async with transaction(factory) as s:
            await resources.create(
                s,
                account_id=account,
                kind="tool",
                name="meanwhile",
                body={"parameters": "{}"},
                version_description=None,
            )
        order.append("writer")

    await asyncio.gather(importing(), other_writer())
    assert order == ["writer", "import"]


def test_an_upper_case_copy_of_an_id_is_refused() -> None:
    """Ids are compared as text: an upper-case copy of another account's id was a second id for it."""
    lower = "abcdef01-2345-4789-8abc-def012345678"
    parsed = transfer.parse_documents([("doc", [prompt(0) | {"id": lower.upper()}, prompt(1) | {"id": lower}])])
    assert [i.id for i in parsed.items] == [lower]
    assert [o.reason for o in parsed.refused] == ["id must be a UUID, in lower case as the API returns it"]


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[" * 500 + "]" * 500])
def test_deeply_nested_import_files_are_a_clear_error(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from openevi.cli import main

    path = tmp_path / "deep.json"
    path.write_text(text)
    code = main(["import", "--data-dir", str(tmp_path / "data"), str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 2:
        assert "nested too deeply" in captured.err
    else:  # parsed: the deep lists are refused with a reason, nothing is imported
        assert code == 1 and "nested more than" in captured.out
