"""Limits and quotas over the real chat socket, with the hume SDK: oversized session settings and
texts get an `error` (and the chat goes on), a chat's stored bytes are capped, and an account is
refused at connect time (HTTP 429) past its concurrent chats, chats per minute or storage."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import Context, SessionSettings, UserInput
from hume.empathic_voice.types import ConnectSessionSettings, Tool

from tests.integration.chat_support import connect_once_admitted, recv_until, scripted_server
from tests.integration.support import store
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM

LIMITS = {
    "OPENEVI_CHAT_MAX_SYSTEM_PROMPT_BYTES": "4000",
    "OPENEVI_CHAT_MAX_CONTEXT_BYTES": "2000",
    "OPENEVI_CHAT_MAX_VARIABLES": "5",
    "OPENEVI_CHAT_MAX_VARIABLES_BYTES": "3000",
    "OPENEVI_CHAT_MAX_TOOLS": "3",
    "OPENEVI_CHAT_MAX_TOOLS_BYTES": "6000",
    "OPENEVI_CHAT_MAX_TEXT_BYTES": "3000",
    "OPENEVI_CHAT_MAX_STORED_BYTES": "30000",
    "OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS": "2",
    "OPENEVI_ACCOUNT_MAX_CHATS_PER_MINUTE": "4",
    "OPENEVI_ACCOUNT_MAX_STORED_BYTES": "50000",
    "OPENEVI_ACCOUNT_MAX_RESOURCE_BYTES": "50000",
    # Text-only chats: no speech-input models to load.
    "OPENEVI_ASR_PROVIDER": "none",
    "OPENEVI_VAD_PROVIDER": "none",
    "OPENEVI_PROSODY_PROVIDER": "none",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(Path(tmp_path_factory.mktemp("limits")), llm, **LIMITS)
    proc.start()
    yield proc
    proc.stop()


def fresh_key(server: ServerProcess) -> str:
    """The key of a brand-new account: every test starts with its quotas untouched."""
    return server.new_account_key("limits")


def fresh_client(server: ServerProcess, api_key: str | None = None) -> AsyncHumeClient:
    return AsyncHumeClient(api_key=api_key or fresh_key(server), base_url=server.base_url)


async def refused_with(settings: SessionSettings, client: AsyncHumeClient) -> Any:
    """Send `settings` on a new chat: the `error` it gets; then check the chat still answers."""
    async with client.empathic_voice.chat.connect() as socket:
        assert (await socket.recv()).type == "chat_metadata"
        await socket.send_publish(settings)
        error = (await recv_until(socket, "error"))[-1]
        await socket.send_publish(UserInput(text="still there?"))
        answer = await recv_until(socket, "assistant_end")
    assert not [m for m in answer if m.type in ("error", "session_settings")], answer
    assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]
    return error


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (SessionSettings(system_prompt="x" * 4001), "system_prompt"),
        (SessionSettings(system_prompt="{{v}}" * 100, variables={"v": "y" * 100}), "system_prompt"),
        (SessionSettings(context=Context(text="c" * 2001, type="persistent")), "context"),
        (SessionSettings(variables={f"v{i}": i for i in range(6)}), "variables"),
        (SessionSettings(variables={"big": "z" * 3001}), "variables"),
        (SessionSettings(tools=[Tool(name=f"t{i}", parameters="{}", type="function") for i in range(4)]), "tools"),
        (SessionSettings(metadata={"blob": "m" * 3001}), "metadata"),
    ],
    ids=["prompt", "prompt-rendered", "context", "variable-count", "variable-bytes", "tool-count", "metadata"],
)
async def test_oversized_session_settings_get_an_error_and_are_not_applied(
    limited: ServerProcess, settings: SessionSettings, needle: str
) -> None:
    client = fresh_client(limited)
    error = await refused_with(settings, client)
    assert (error.code, error.slug) == ("E0104", "limit_exceeded"), error
    assert needle in error.message


async def test_deeply_nested_tool_parameters_in_session_settings_are_refused(limited: ServerProcess) -> None:
    deep = '{"type": "object", "properties": {"a": ' + "[" * 1500 + "]" * 1500 + "}}"
    error = await refused_with(
        SessionSettings(tools=[Tool(name="deep", parameters=deep, type="function")]), fresh_client(limited)
    )
    assert error.code == "E0101" and "parameters" in error.message, error


async def test_oversized_texts_get_an_error(limited: ServerProcess) -> None:
    client = fresh_client(limited)
    async with client.empathic_voice.chat.connect() as socket:
        assert (await socket.recv()).type == "chat_metadata"
        await socket.send_publish(UserInput(text="w" * 3001))
        error = (await recv_until(socket, "error"))[-1]
        assert (error.code, error.slug) == ("E0104", "limit_exceeded")
        await socket.send_publish(UserInput(text="w" * 3000))  # at the limit: accepted
        answer = await recv_until(socket, "assistant_end")
    assert [m.message.content for m in answer if m.type == "user_message"] == ["w" * 3000]


async def stored_bytes(server: ServerProcess, chat_id: str) -> int:
    """The chat's stored bytes once it has ended (its end is written after all its events)."""
    from openevi.store.models import Chat

    async with asyncio.timeout(30):  # bounds a hang only
        while True:
            async with store(server) as s:
                chat = await s.get(Chat, chat_id)
                assert chat is not None
                if chat.status != "ACTIVE":
                    return int(chat.stored_bytes)
            await asyncio.sleep(0.05)


async def fill_chat(socket: Any) -> int:
    """Send prompts of 3,500 bytes until the chat's storage budget refuses one; returns how many fit."""
    for accepted in range(20):
        await socket.send_publish(SessionSettings(system_prompt=f"{accepted:04d}" + "p" * 3496))
        reply = (await recv_until_any(socket, {"session_settings", "error"}))[-1]
        if reply.type == "error":
            assert (reply.code, reply.slug) == ("E0105", "storage_limit_reached"), reply
            return accepted
    raise AssertionError("the chat's storage budget never ran out")


async def recv_until_any(socket: Any, kinds: set[str]) -> list[Any]:
    seen = []
    while True:
        message = await socket.recv()
        seen.append(message)
        if message.type in kinds:
            return seen


async def test_a_chat_stores_at_most_its_budget_and_goes_on(limited: ServerProcess) -> None:
    client = fresh_client(limited)
    async with client.empathic_voice.chat.connect() as socket:
        chat_id = (await socket.recv()).chat_id
        accepted = await fill_chat(socket)
        # Each accepted change stores about 7,000 bytes (the settings and the rendered prompt).
        assert 2 <= accepted <= 4, accepted
        # Still refused on retry: nothing more fits.
        await socket.send_publish(SessionSettings(system_prompt="q" * 3500))
        again = (await recv_until_any(socket, {"session_settings", "error"}))[-1]
        assert again.type == "error" and again.code == "E0105"
        # Small messages that fit are still answered.
        await socket.send_publish(UserInput(text="hi"))
        answer = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]
    used = await stored_bytes(limited, chat_id) - recording_bytes(limited, chat_id)
    # The budget bounds what clients add; the server's own events (answer, end) add a little, and the
    # recording is charged to the account on top (test_recordings_count_against_the_account_storage_quota).
    assert 20_000 < used <= 30_000 + 200, used


async def test_concurrent_chats_per_account_are_capped_with_429(limited: ServerProcess) -> None:
    key = fresh_key(limited)
    client = fresh_client(limited, key)
    other = fresh_client(limited)
    async with client.empathic_voice.chat.connect() as first, client.empathic_voice.chat.connect() as second:
        assert (await first.recv()).type == "chat_metadata"
        assert (await second.recv()).type == "chat_metadata"
        with pytest.raises(ApiError) as refused:
            async with client.empathic_voice.chat.connect():
                pass
        assert refused.value.status_code == 429
        # The refusal carries the usual JSON error body (the SDK keeps only the status).
        status, body = await raw_refusal(limited, key)
        assert status == 429
        assert body["code"] == "too_many_concurrent_chats" and "2" in body["message"], body
        # Another account is not affected.
        async with other.empathic_voice.chat.connect() as theirs:
            assert (await theirs.recv()).type == "chat_metadata"
    # Slots free up when chats end (the server notices the closed sockets a moment later).
    await connect_once_admitted(client.empathic_voice.chat.connect, 429)


async def test_chats_per_minute_are_capped_with_429(limited: ServerProcess) -> None:
    key = fresh_key(limited)
    client = fresh_client(limited, key)
    for _ in range(4):
        async with client.empathic_voice.chat.connect() as socket:
            assert (await socket.recv()).type == "chat_metadata"
    with pytest.raises(ApiError) as refused:
        async with client.empathic_voice.chat.connect():
            pass
    assert refused.value.status_code == 429
    status, body = await raw_refusal(limited, key)
    assert status == 429 and body["code"] == "too_many_chats_per_minute", body


async def fill_exactly(socket: Any) -> None:
    """Send user texts until the chat's budget is used to the byte (the refusals say what is left)."""
    remaining: int | None = None
    while remaining is None or remaining > 0:
        await socket.send_publish(UserInput(text="w" * (3000 if remaining is None else min(3000, remaining))))
        reply = (await recv_until_any(socket, {"assistant_end", "error"}))[-1]
        if reply.type == "error":
            assert reply.code == "E0105", reply
            found = re.search(r"(\d+) are left", reply.message)
            assert found, reply.message
            remaining = int(found.group(1))


async def raw_refusal(server: ServerProcess, api_key: str) -> tuple[int, dict[str, Any]]:
    """Connect with a plain WebSocket client: the refusal's status and JSON body."""
    url = server.base_url.replace("http", "ws", 1) + "/v0/evi/chat?api_key=" + api_key
    with pytest.raises(websockets.exceptions.InvalidStatus) as raw:
        async with websockets.connect(url):
            pass
    return raw.value.response.status_code, json.loads(raw.value.response.body)


async def test_account_storage_quota_caps_chats_and_refuses_new_ones(limited: ServerProcess) -> None:
    key = fresh_key(limited)
    client = fresh_client(limited, key)
    chat_ids = []
    # The first chat stops at its own budget, the second at what the account has left.
    async with client.empathic_voice.chat.connect() as socket:
        chat_ids.append((await socket.recv()).chat_id)
        await fill_chat(socket)
    async with client.empathic_voice.chat.connect() as socket:
        chat_ids.append((await socket.recv()).chat_id)
        await fill_chat(socket)
        await fill_exactly(socket)
    used = [await stored_bytes(limited, chat_id) - recording_bytes(limited, chat_id) for chat_id in chat_ids]
    # What clients send stops at the quota; the server's own last events (an answer, the end) add a
    # little, and the recording of the last chat is charged when it ends.
    assert 50_000 <= sum(used) <= 50_000 + 200, used
    with pytest.raises(ApiError) as refused:
        async with client.empathic_voice.chat.connect():
            pass
    assert refused.value.status_code == 429
    status, body = await raw_refusal(limited, key)
    assert status == 429 and body["code"] == "storage_quota_exceeded", body


def recording_bytes(server: ServerProcess, chat_id: str) -> int:
    """The size of the chat's recorded tracks (kept in the data dir by the default local store)."""
    return sum(track.stat().st_size for track in (server.data_dir / "recordings" / chat_id).glob("*.wav"))


async def test_recordings_count_against_the_account_storage_quota(limited: ServerProcess) -> None:
    """A chat's recording was charged nothing (10 s of 1 MB audio messages made an 834 MB track for
    697 bytes): its files now count against the account's quota when the chat ends."""
    key = fresh_key(limited)
    client = fresh_client(limited, key)
    async with client.empathic_voice.chat.connect() as socket:
        chat_id = (await socket.recv()).chat_id
        for _ in range(4):  # answers spoken by the TTS: the assistant track grows
            await socket.send_publish(UserInput(text="talk"))
            await recv_until(socket, "assistant_end")
    stored = await stored_bytes(limited, chat_id)
    recorded = recording_bytes(limited, chat_id)
    assert recorded > 0
    assert stored >= recorded  # its events, and its recording
    assert stored >= 50_000, (stored, recorded)  # the quota is used up: by the recording, not the texts
    status, body = await raw_refusal(limited, key)
    assert status == 429 and body["code"] == "storage_quota_exceeded", body


async def test_connect_time_settings_over_the_limits_get_an_error(limited: ServerProcess) -> None:
    client = fresh_client(limited)
    settings = ConnectSessionSettings(system_prompt="u" * 4001)
    async with client.empathic_voice.chat.connect(session_settings=settings) as socket:
        assert (await socket.recv()).type == "chat_metadata"
        error = (await recv_until(socket, "error"))[-1]
        assert (error.code, error.slug) == ("E0104", "limit_exceeded")
        await socket.send_publish(UserInput(text="hello"))
        answer = await recv_until(socket, "assistant_end")
    assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]


def test_rest_stored_versions_are_within_the_account_quota(limited: ServerProcess) -> None:
    """20 clients posting 100 KB prompt versions for 10 s used to add 96 MB: nothing bounded them.
    A version past the quota is refused (429) and not stored; deleting versions makes room; other
    accounts are not affected."""
    import httpx

    key = fresh_key(limited)
    headers = {"X-Hume-Api-Key": key}
    url = f"{limited.base_url}/v0/evi/prompts"
    created = httpx.post(url, headers=headers, json={"name": "big", "text": "p" * 9_000}, timeout=30)
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    statuses = [
        httpx.post(f"{url}/{prompt_id}", headers=headers, json={"text": "q" * 9_000}, timeout=30).status_code
        for _ in range(8)
    ]
    assert statuses[:4] == [201] * 4 and set(statuses[5:]) == {429}, statuses
    refused = httpx.post(f"{url}/{prompt_id}", headers=headers, json={"text": "q" * 9_000}, timeout=30)
    assert refused.json()["code"] == "storage_quota_exceeded", refused.text
    versions = httpx.get(f"{url}/{prompt_id}", headers=headers, params={"restrict_to_most_recent": False}, timeout=30)
    stored = versions.json()["prompts_page"]
    assert len(stored) == 1 + statuses.count(201)  # the refused ones were rolled back
    # Deleting a version makes room for one more.
    last = max(p["version"] for p in stored)
    assert httpx.delete(f"{url}/{prompt_id}/version/{last}", headers=headers, timeout=30).status_code == 200
    again = httpx.post(f"{url}/{prompt_id}", headers=headers, json={"text": "q" * 9_000}, timeout=30)
    assert again.status_code == 201, again.text
    # Another account still has its whole quota.
    other = httpx.post(
        url, headers={"X-Hume-Api-Key": fresh_key(limited)}, json={"name": "big", "text": "p" * 40_000}, timeout=30
    )
    assert other.status_code == 201, other.text


@pytest.mark.parametrize("url", ["https://0177.0.0.1/hook", "https://\u0661\u0662\u0667.0.0.1/hook"])
def test_a_webhook_url_the_server_could_never_call_is_refused_at_config_time(limited: ServerProcess, url: str) -> None:
    import httpx

    response = httpx.post(
        f"{limited.base_url}/v0/evi/configs",
        headers={"X-Hume-Api-Key": fresh_key(limited)},
        json={"name": "hooks", "evi_version": "3", "webhooks": [{"url": url, "events": ["chat_started"]}]},
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert "not a valid URL" in response.text
