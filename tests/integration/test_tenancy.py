"""Tenancy: one account never sees, changes or deletes another account's data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hume.core.api_error import ApiError
from hume.empathic_voice.configs.types import PostedConfigPrompt

from openevi.store import chats
from tests.integration.support import (
    account_of,
    assert_error_body,
    async_client,
    http,
    new_account_key,
    run_async,
    store,
    sync_client,
)
from tests.server import ServerProcess

PARAMS = json.dumps({"type": "object", "properties": {}})


@dataclass(frozen=True)
class Owned:
    """The first account's data."""

    key: str
    prompt: str
    tool: str
    config: str
    chat: str
    group: str


async def _write_chat(server: ServerProcess, key: str, config_id: str) -> tuple[str, str]:
    async with store(server) as s:
        account_id = await account_of(s, key)
        chat, group, _ = await chats.start_chat(s, account_id=account_id, config_id=config_id, config_version=0)
        await chats.append_event(s, chat_id=chat.id, role="USER", type="USER_MESSAGE", message_text="secret")
        return chat.id, group.id


@pytest.fixture(scope="module")
def owned(server: ServerProcess) -> Owned:
    key = new_account_key(server, "owner")
    ev = sync_client(server, key).empathic_voice
    prompt = ev.prompts.create_prompt(name="shared-name", text="Owner's prompt.")
    tool = ev.tools.create_tool(name="shared_name", parameters=PARAMS)
    assert prompt is not None and tool is not None
    config = ev.configs.create_config(
        name="shared-name", evi_version="3", prompt=PostedConfigPrompt(id=prompt.id, version=0)
    )
    chat_id, group_id = run_async(_write_chat(server, key, config.id))
    return Owned(key=key, prompt=prompt.id, tool=tool.id, config=config.id, chat=chat_id, group=group_id)


@pytest.fixture(scope="module")
def intruder(server: ServerProcess) -> str:
    return server.new_account_key("intruder")


def snapshot(server: ServerProcess, key: str) -> dict[str, Any]:
    everything = {"page_size": 100, "restrict_to_most_recent": False}
    with http(server, key) as raw:
        found: dict[str, Any] = {
            kind: raw.get(f"/v0/evi/{kind}", params=everything).json()[f"{kind}_page"]
            for kind in ("prompts", "tools", "configs")
        }
        found["chats"] = raw.get("/v0/evi/chats").json()["chats_page"]
        found["chat_groups"] = raw.get("/v0/evi/chat_groups").json()["chat_groups_page"]
        for chat in found["chats"]:
            found[chat["id"]] = raw.get(f"/v0/evi/chats/{chat['id']}").json()["events_page"]
    return found


def test_id_operations_on_another_accounts_data_are_404(server: ServerProcess, owned: Owned, intruder: str) -> None:
    before = snapshot(server, owned.key)
    assert len(before["chats"]) == 1 and len(before[owned.chat]) == 1
    bodies = {"prompts": {"text": "x"}, "tools": {"parameters": PARAMS}, "configs": {"evi_version": "3"}}
    with http(server, intruder) as raw:
        for kind, rid in (("prompts", owned.prompt), ("tools", owned.tool), ("configs", owned.config)):
            base = f"/v0/evi/{kind}/{rid}"
            for response in (
                raw.get(base),
                raw.post(base, json=bodies[kind]),
                raw.patch(base, json={"name": "stolen"}),
                raw.get(f"{base}/version/0"),
                raw.patch(f"{base}/version/0", json={"version_description": "stolen"}),
                raw.delete(f"{base}/version/0"),
                raw.delete(base),
            ):
                assert_error_body(response, 404)
        for path in (
            f"/v0/evi/chats/{owned.chat}",
            f"/v0/evi/chats/{owned.chat}/audio",
            f"/v0/evi/chat_groups/{owned.group}",
            f"/v0/evi/chat_groups/{owned.group}/events",
            f"/v0/evi/chat_groups/{owned.group}/audio",
        ):
            assert_error_body(raw.get(path), 404)
        send = raw.post(f"/v0/evi/chat/{owned.chat}/send", json={"type": "user_input", "text": "hi"})
        assert_error_body(send, 404)
        # References to another account's prompt or tool are missing references.
        for body in (
            {"prompt": {"id": owned.prompt}},
            {"prompt": {"id": owned.prompt, "version": 0}},
            {"tools": [{"id": owned.tool}]},
        ):
            refused = raw.post("/v0/evi/configs", json={"name": "borrowed", "evi_version": "3", **body})
            assert refused.status_code == 400, refused.text
    assert snapshot(server, owned.key) == before


def test_lists_exclude_another_accounts_data(server: ServerProcess, owned: Owned, intruder: str) -> None:
    ev = sync_client(server, intruder).empathic_voice
    assert list(ev.prompts.list_prompts(restrict_to_most_recent=False)) == []
    assert list(ev.tools.list_tools(name="shared_name")) == []
    assert list(ev.configs.list_configs(name="shared-name")) == []
    assert list(ev.chats.list_chats()) == []
    assert list(ev.chats.list_chats(config_id=owned.config)) == []
    assert list(ev.chat_groups.list_chat_groups()) == []
    assert list(ev.chat_groups.list_chat_groups(config_id=owned.config)) == []


def test_same_names_in_two_accounts_stay_apart(server: ServerProcess, owned: Owned, intruder: str) -> None:
    before = snapshot(server, owned.key)
    ev = sync_client(server, intruder).empathic_voice
    mine = ev.prompts.create_prompt(name="shared-name", text="Intruder's prompt.")
    assert mine is not None and mine.id != owned.prompt
    ev.prompts.update_prompt_name(id=mine.id, name="shared-name-2")
    ev.prompts.delete_prompt(id=mine.id)
    assert snapshot(server, owned.key) == before


async def test_async_sdk_cannot_reach_another_account(server: ServerProcess, owned: Owned, intruder: str) -> None:
    ev = async_client(server, intruder).empathic_voice
    with pytest.raises(ApiError) as prompt_error:
        await ev.prompts.get_prompt_version(id=owned.prompt, version=0)
    assert prompt_error.value.status_code == 404
    with pytest.raises(ApiError) as config_error:
        await ev.configs.delete_config(id=owned.config)
    assert config_error.value.status_code == 404
    with pytest.raises(ApiError) as chat_error:
        await ev.chats.list_chat_events(id=owned.chat)
    assert chat_error.value.status_code == 404
    still = await async_client(server, owned.key).empathic_voice.configs.get_config_version(id=owned.config, version=0)
    assert still.name == "shared-name" and still.prompt is not None and still.prompt.text == "Owner's prompt."


def test_access_tokens_are_scoped_to_their_account(server: ServerProcess, owned: Owned) -> None:
    token = httpx.post(
        f"{server.base_url}/oauth2-cc/token",
        auth=(server.api_key, server.secret_key),
        data={"grant_type": "client_credentials"},
        timeout=30.0,
    ).json()["access_token"]
    response = httpx.get(
        f"{server.base_url}/v0/evi/prompts/{owned.prompt}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    assert_error_body(response, 404)
