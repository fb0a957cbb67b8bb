"""`openevi import` / `openevi export`: what a team saved from the REST API comes back with its ids.

The saved files are made the way a team would have made them: objects created with the official
SDK on one server, then every version listed through the REST API and written to disk as returned.
They are imported into a fresh database, and a server on that database is checked with the SDK.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hume.core.api_error import ApiError
from hume.empathic_voice import UserInput

from tests.integration.chat_support import recv_until, scripted_server, wait_chat_ended
from tests.integration.support import async_client, http, new_account_key, sync_client, unique
from tests.server import ServerProcess, database_url_for_tests
from tests.support.scripted_llm import Reply, ScriptedLLM

PARAMS_V0 = json.dumps({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]})
PARAMS_V1 = json.dumps(
    {"type": "object", "properties": {"order": {"type": "string"}, "email": {"type": "string"}}, "required": ["order"]}
)
KINDS = (("prompts", "prompts_page"), ("tools", "tools_page"), ("configs", "configs_page"))


@dataclass
class Saved:
    """What the team saved, and the ids their app hard-codes."""

    files: list[Path]
    listings: dict[str, list[dict[str, Any]]]  # every version, as the source server lists them
    prompt_id: str
    tool_id: str
    tool_name: str
    phone_id: str
    full_id: str


def all_versions(server: ServerProcess, key: str, plural: str, page_key: str, *, page_size: int = 100) -> list[Any]:
    """The raw list pages of every version, as `GET /v0/evi/{plural}` returns them."""
    pages = []
    with http(server, key) as raw:
        number = 0
        while True:
            response = raw.get(
                f"/v0/evi/{plural}",
                params={"restrict_to_most_recent": "false", "page_size": page_size, "page_number": number},
            )
            assert response.status_code == 200, response.text
            pages.append(response.json())
            number += 1
            if number >= pages[-1]["total_pages"]:
                return pages


def listing(server: ServerProcess, key: str) -> dict[str, list[dict[str, Any]]]:
    return {
        plural: [item for page in all_versions(server, key, plural, page_key) for item in page[page_key]]
        for plural, page_key in KINDS
    }


@pytest.fixture(scope="module")
def saved(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    key = new_account_key(server, "import-source")
    ev = sync_client(server, key).empathic_voice
    prompt = ev.prompts.create_prompt(name=unique("greeter"), text="You greet callers.", version_description="first")
    ev.prompts.create_prompt_version(id=prompt.id, text="You greet callers briskly.", version_description="brisk")
    ev.prompts.create_prompt_version(id=prompt.id, text="You greet callers warmly.", version_description="warm")
    ev.prompts.delete_prompt_version(id=prompt.id, version=1)  # saved versions have a gap: 0 and 2
    ev.prompts.update_prompt_description(id=prompt.id, version=0, version_description="first, described later")
    tool_name = unique("lookup_order").replace("-", "_")
    tool = ev.tools.create_tool(
        name=tool_name,
        parameters=PARAMS_V0,
        description="Find an order",
        fallback_content="The order system is down.",
        version_description="orders",
    )
    ev.tools.create_tool_version(id=tool.id, parameters=PARAMS_V1, description="Find an order by email too")
    phone = ev.configs.create_config(
        name=unique("phone"),
        evi_version="3",
        version_description="what the phone app uses",
        prompt={"id": prompt.id, "version": 2},
        tools=[{"id": tool.id, "version": 1}],
        builtin_tools=[{"name": "hang_up"}],
        event_messages={"on_new_chat": {"enabled": True, "text": "Thanks for calling!"}},
        ellm_model={"allow_short_responses": True},
    )
    full = ev.configs.create_config(
        name=unique("full"),
        evi_version="3",
        prompt={"id": prompt.id, "version": 0},
        voice={"name": "ITO", "provider": "HUME_AI"},
        language_model={
            "model_provider": "ANTHROPIC",
            "model_resource": "claude-3-7-sonnet-latest",
            "temperature": 0.4,
        },
        tools=[{"id": tool.id, "version": 0}],
        builtin_tools=[{"name": "web_search", "fallback_content": "No search today."}],
        event_messages={
            "on_inactivity_timeout": {"enabled": True, "text": "Still there?"},
            "on_max_duration_timeout": {"enabled": True, "text": "Time is up."},
        },
        timeouts={"inactivity": {"enabled": True, "duration_secs": 90}, "max_duration": {"enabled": False}},
        nudges={"enabled": True, "interval_secs": 7},
        interruption={"min_interruption_ms": 350},
        turn_detection={"end_of_turn_silence_ms": 1100, "prefix_padding_ms": 200, "speech_detection_threshold": 0.7},
        webhooks=[{"url": "https://hooks.example.com/evi", "events": ["chat_started", "chat_ended"]}],
    )
    ev.configs.create_config_version(
        id=full.id,
        evi_version="4-mini",
        version_description="latest prompt",
        prompt={"id": prompt.id},  # LATEST
        tools=[{"id": tool.id}],
    )

    out = tmp_path_factory.mktemp("saved")
    files: list[Path] = []
    for number, page in enumerate(all_versions(server, key, "prompts", "prompts_page", page_size=1)):
        files.append(out / f"prompts-{number}.json")  # one file per page, as a paging script writes them
        files[-1].write_text(json.dumps(page))
    files.append(out / "tools.json")  # a JSON list of pages
    files[-1].write_text(json.dumps(all_versions(server, key, "tools", "tools_page", page_size=1)))
    files.append(out / "configs.json")
    files[-1].write_text(json.dumps(all_versions(server, key, "configs", "configs_page")[0]))
    sdk_dumps = list(ev.configs.list_config_versions(id=full.id, restrict_to_most_recent=False))
    files.append(out / "sdk-dump.json")  # a list of the SDK's objects (null fields kept), copies again
    files[-1].write_text(json.dumps([c.model_dump(mode="json") for c in sdk_dumps if c]))
    with http(server, key) as raw:  # and one config as GET returns it (a copy of a listed version)
        single = raw.get(f"/v0/evi/configs/{phone.id}/version/0").json()
    files.append(out / "phone-config.json")
    files[-1].write_text(json.dumps(single))
    return Saved(
        files=files,
        listings=listing(server, key),
        prompt_id=prompt.id,
        tool_id=tool.id,
        tool_name=tool_name,
        phone_id=phone.id,
        full_id=full.id,
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    """A server whose fresh database only holds what `openevi import` put there (before it started)."""
    proc = scripted_server(Path(tmp_path_factory.mktemp("target")), llm)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def imported(saved: Saved, target: ServerProcess) -> str:
    """The first import's report; the server starts on the database afterwards."""
    result = target.cli("import", *map(str, reversed(saved.files)))  # configs first: the order is the import's job
    assert result.returncode == 0, result.stdout + result.stderr
    target.start()
    return result.stdout


def counts(report: str) -> dict[str, int]:
    summary = report.strip().splitlines()[-1]
    return {part.rsplit(" ", 1)[0].strip(): int(part.rsplit(" ", 1)[1]) for part in summary.split(",")}


def test_import_recreates_every_version_with_its_id(saved: Saved, target: ServerProcess, imported: str) -> None:
    # 2 prompt versions, 2 tool versions, 1 + 2 config versions; the duplicate single object is not counted twice.
    assert counts(imported) == {"created": 7, "skipped": 0, "refused": 0, "conflicts": 0}, imported
    assert listing(target, target.api_key) == saved.listings  # ids, versions, names, descriptions, timestamps

    ev = sync_client(target).empathic_voice
    source = {p["version"]: p for p in saved.listings["prompts"]}
    page = ev.prompts.list_prompt_versions(id=saved.prompt_id, restrict_to_most_recent=False)
    got = [p for p in page.prompts_page if p]
    assert [p.version for p in got] == [0, 2]
    for p in got:
        want = source[p.version]
        assert (p.id, p.name, p.text) == (saved.prompt_id, want["name"], want["text"])
        assert (p.version_description, p.created_on, p.modified_on) == (
            want["version_description"],
            want["created_on"],
            want["modified_on"],
        )
    assert got[0].version_description == "first, described later"

    phone = ev.configs.get_config_version(id=saved.phone_id, version=0)
    assert phone.prompt is not None and (phone.prompt.id, phone.prompt.version) == (saved.prompt_id, 2)
    assert phone.prompt.text == "You greet callers warmly."
    assert phone.tools is not None and [(t.id, t.version) for t in phone.tools if t] == [(saved.tool_id, 1)]
    full = ev.configs.get_config_version(id=saved.full_id, version=0)
    assert full.voice is not None and full.voice.name == "ITO"
    assert full.webhooks is not None and [w.url for w in full.webhooks if w] == ["https://hooks.example.com/evi"]
    assert full.nudges is not None and full.nudges.interval_secs == 7
    assert full.turn_detection is not None and full.turn_detection.speech_detection_threshold == 0.7
    latest = ev.configs.get_config_version(id=saved.full_id, version=1)
    assert latest.prompt is not None and (latest.prompt.version, latest.prompt.version_type) == (2, "LATEST")


def test_versions_made_after_an_import_get_new_numbers(saved: Saved, target: ServerProcess, imported: str) -> None:
    # The same versions (0 and 2) under an id of their own, in an account of its own.
    key = new_account_key(target, "renumber")
    fresh_prompt = str(uuid.uuid4())
    path = target.data_dir / "renumber.json"
    path.write_text(json.dumps([dict(p, id=fresh_prompt) for p in saved.listings["prompts"]]))
    result = target.cli("import", "--api-key", key, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    ev = sync_client(target, key).empathic_voice
    made = ev.prompts.create_prompt_version(id=fresh_prompt, text="A new one.")
    assert made is not None and made.version == 3  # after the highest imported version (2)


def test_second_import_changes_nothing(saved: Saved, target: ServerProcess, imported: str) -> None:
    result = target.cli("import", *map(str, saved.files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts(result.stdout) == {"created": 0, "skipped": 7, "refused": 0, "conflicts": 0}, result.stdout
    assert listing(target, target.api_key) == saved.listings


def test_ids_of_another_account_are_refused(saved: Saved, target: ServerProcess, imported: str) -> None:
    other = new_account_key(target, "someone-else")
    result = target.cli("import", "--api-key", other, *map(str, saved.files))
    assert result.returncode == 1
    assert counts(result.stdout) == {"created": 0, "skipped": 0, "refused": 7, "conflicts": 0}, result.stdout
    assert "already belongs to another account" in result.stdout
    assert listing(target, other) == {"prompts": [], "tools": [], "configs": []}
    with pytest.raises(ApiError) as missing:
        sync_client(target, other).empathic_voice.configs.get_config_version(id=saved.phone_id, version=0)
    assert missing.value.status_code == 404
    assert listing(target, target.api_key) == saved.listings

    unknown = target.cli("import", "--api-key", "oevi_not_a_key", str(saved.files[0]))
    assert unknown.returncode == 2 and "no live key" in unknown.stderr


def test_changed_versions_are_conflicts_not_overwrites(saved: Saved, target: ServerProcess, imported: str) -> None:
    changed = [dict(p, text="Someone edited this.") for p in saved.listings["prompts"] if p["version"] == 2]
    path = target.data_dir / "changed.json"
    path.write_text(json.dumps(changed))
    result = target.cli("import", str(path))
    assert result.returncode == 1
    assert counts(result.stdout) == {"created": 0, "skipped": 0, "refused": 0, "conflicts": 1}, result.stdout
    kept = sync_client(target).empathic_voice.prompts.get_prompt_version(id=saved.prompt_id, version=2)
    assert kept.text == "You greet callers warmly."


def test_configs_pointing_at_missing_prompts_are_refused(target: ServerProcess, imported: str) -> None:
    config_id, prompt_id = str(uuid.uuid4()), str(uuid.uuid4())
    path = target.data_dir / "dangling.json"
    path.write_text(
        json.dumps(
            {
                "id": config_id,
                "version": 0,
                "name": unique("dangling"),
                "evi_version": "3",
                "created_on": 1_700_000_000_000,
                "modified_on": 1_700_000_000_000,
                "prompt": {"id": prompt_id, "version": 4, "version_type": "FIXED"},
            }
        )
    )
    result = target.cli("import", str(path))
    assert result.returncode == 1
    refused = [line for line in result.stdout.splitlines() if line.startswith("refused")]
    assert len(refused) == 1 and config_id in refused[0], result.stdout
    assert f"prompt {prompt_id} (version 4), which is neither in the import nor in this account" in refused[0]
    with pytest.raises(ApiError) as missing:
        sync_client(target).empathic_voice.configs.get_config_version(id=config_id, version=0)
    assert missing.value.status_code == 404


async def test_a_chat_opens_with_the_imported_config_id(
    saved: Saved, target: ServerProcess, imported: str, llm: ScriptedLLM
) -> None:
    llm.script(Reply("Your order ships tomorrow.", when="order"))
    client = async_client(target)
    async with client.empathic_voice.chat.connect(config_id=saved.phone_id) as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        greeting = await recv_until(socket, "assistant_message")
        assert greeting[-1].message.content == "Thanks for calling!"  # the imported on_new_chat message
        await socket.send_publish(UserInput(text="Where is my order?"))
        await recv_until(socket, "assistant_end")
    request = [r for r in llm.requests if r.last_user_message == "Where is my order?"][-1]
    assert request.messages[0]["role"] == "system"
    assert "You greet callers warmly." in request.messages[0]["content"]  # prompt version 2, resolved
    assert saved.tool_name in request.tool_names
    ended = await wait_chat_ended(client, metadata.chat_id)
    assert ended.config is not None and (ended.config.id, ended.config.version) == (saved.phone_id, 0)


def test_export_then_import_round_trips_exactly(target: ServerProcess, imported: str, tmp_path: Path) -> None:
    exported = tmp_path / "export.json"
    result = target.cli("export", "--out", str(exported))
    assert result.returncode == 0, result.stderr
    fresh = ServerProcess(data_dir=tmp_path / "fresh", database_url=database_url_for_tests())
    again = fresh.cli("import", str(exported))
    assert again.returncode == 0, again.stdout + again.stderr
    assert counts(again.stdout)["created"] > 0
    second = tmp_path / "second.json"
    assert fresh.cli("export", "--out", str(second)).returncode == 0
    assert json.loads(second.read_text()) == json.loads(exported.read_text())
