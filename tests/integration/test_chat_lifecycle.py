"""A chat's life: resumed chat groups, the greeting, nudges, inactivity and duration timeouts, and
chats left open by a crash (closed with ERROR when the server starts again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hume.core.api_error import ApiError
from hume.empathic_voice import UserInput
from websockets.exceptions import ConnectionClosed

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.live_support import WAIT_S, history, make_config, types_of, wait_webhook
from tests.server import ServerProcess
from tests.support.scripted_llm import RecordedRequest, Reply, ScriptedLLM
from tests.webhook_receiver import Receiver


def ended_hook(receiver: Receiver) -> list[dict[str, Any]]:
    return [{"url": receiver.url("/lifecycle"), "events": ["chat_ended"]}]


async def until_closed(socket: Any) -> list[Any]:
    """Everything the server sends until it closes the socket."""
    seen: list[Any] = []
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WAIT_S):
            while True:
                seen.append(await socket.recv())
    return seen


def spoken(messages: list[Any]) -> list[str]:
    return [m.message.content for m in of_type(messages, "assistant_message")]


async def test_resumed_chat_shares_the_group_and_the_conversation(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Nice to meet you, Ada.", when="my name is"), Reply("You are Ada.", when="what is my name"))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        first = await socket.recv()
        await socket.send_publish(UserInput(text="Hi, my name is Ada."))
        await recv_until(socket, "assistant_end")
    await history(client, first.chat_id)

    async with client.empathic_voice.chat.connect(resumed_chat_group_id=first.chat_group_id) as socket:
        second = await socket.recv()
        assert second.chat_group_id == first.chat_group_id and second.chat_id != first.chat_id
        await socket.send_publish(UserInput(text="What is my name?"))
        messages = await recv_until(socket, "assistant_end")
    assert spoken(messages) == ["You are Ada."]
    sent = [(m["role"], m["content"]) for m in llm.requests[-1].messages[1:]]
    assert sent == [
        ("user", "Hi, my name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "What is my name?"),
    ]

    chat, _ = await history(client, second.chat_id)
    assert chat.chat_group_id == first.chat_group_id
    groups = await client.empathic_voice.chat_groups.list_chat_groups(page_size=100)
    found = [g async for g in groups if g.id == first.chat_group_id]
    assert len(found) == 1
    group = found[0]
    assert (group.num_chats, group.most_recent_chat_id) == (2, second.chat_id)
    paged = await client.empathic_voice.chat_groups.get_chat_group(id=first.chat_group_id)
    assert paged.num_chats == 2
    assert {c.id for c in paged.chats_page} == {first.chat_id, second.chat_id}


async def test_resuming_an_unknown_group_is_refused(chat_server: ServerProcess) -> None:
    client = client_for(chat_server)
    with pytest.raises(ApiError) as refused:
        async with client.empathic_voice.chat.connect(resumed_chat_group_id="00000000-0000-4000-8000-000000000000"):
            pass
    assert refused.value.status_code == 404


async def test_greeting_is_spoken_first(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    config_id = await make_config(
        chat_server, event_messages={"on_new_chat": {"enabled": True, "text": "Welcome to openevi."}}
    )
    client = client_for(chat_server)
    asked_before = len(llm.requests)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        greeting = await recv_until(socket, "assistant_end")
    shown = [m.type for m in greeting if m.type not in ("audio_output", "assistant_prosody")]
    assert shown == ["assistant_message", "assistant_end"]
    assert spoken(greeting) == ["Welcome to openevi."] and of_type(greeting, "audio_output")
    assert len(llm.requests) == asked_before  # a greeting text is spoken as written
    _, events = await history(client, metadata.chat_id)
    assert [e.message_text for e in events if e.type == "AGENT_MESSAGE"] == ["Welcome to openevi."]


async def test_inactivity_timeout_says_goodbye_and_ends(chat_server: ServerProcess, receiver: Receiver) -> None:
    config_id = await make_config(
        chat_server,
        timeouts={"inactivity": {"enabled": True, "duration_secs": 1}},
        event_messages={"on_inactivity_timeout": {"enabled": True, "text": "Goodbye for now."}},
        webhooks=ended_hook(receiver),
    )
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        messages = await until_closed(socket)
    assert spoken(messages) == ["Goodbye for now."]
    chat, events = await history(client, metadata.chat_id)
    assert chat.status == "INACTIVITY_TIMEOUT"
    assert types_of(events)[-1] == "CHAT_END_MESSAGE"
    _, body = await wait_webhook(receiver, "chat_ended", metadata.chat_id)
    assert body["end_reason"] == "INACTIVITY_TIMEOUT"


async def test_max_duration_ends_the_chat(chat_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver) -> None:
    llm.script(Reply("Sure."))
    config_id = await make_config(
        chat_server,
        # Long enough for the answer to come first even on a loaded machine (it takes well under a second).
        timeouts={"inactivity": {"enabled": False}, "max_duration": {"enabled": True, "duration_secs": 3}},
        event_messages={"on_max_duration_timeout": {"enabled": True, "text": "Time is up."}},
        webhooks=ended_hook(receiver),
    )
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="quick question"))
        messages = await until_closed(socket)
    assert spoken(messages) == ["Sure.", "Time is up."]
    chat, _ = await history(client, metadata.chat_id)
    assert chat.status == "MAX_DURATION_TIMEOUT"
    _, body = await wait_webhook(receiver, "chat_ended", metadata.chat_id)
    assert body["end_reason"] == "MAX_DURATION_TIMEOUT"


async def test_nudge_after_silence(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    def nudged(request: RecordedRequest) -> bool:
        return "silent" in request.messages[0]["content"]

    llm.script(Reply("Are you still there?", when=nudged), Reply("Hello."))
    config_id = await make_config(chat_server, nudges={"enabled": True, "interval_secs": 1})
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="hello"))
        answer = await recv_until(socket, "assistant_end")
        assert spoken(answer) == ["Hello."]
        nudge = await recv_until(socket, "assistant_end")
    assert spoken(nudge) == ["Are you still there?"]
    assert of_type(nudge, "user_message") == []
    request = llm.requests[-1]
    assert nudged(request) and request.last_user_message == "hello"


@pytest.fixture
def crash_server(tmp_path: Path, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(tmp_path / "crash", llm, OPENEVI_INSTANCE_ID="crash-test")
    proc.start()
    yield proc
    proc.stop()


async def test_chat_left_open_by_a_crash_is_closed_with_error(
    crash_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    llm.script(Reply("Noted."))
    client = client_for(crash_server)
    config_id = await make_config(crash_server, webhooks=ended_hook(receiver))
    with contextlib.suppress(ConnectionClosed, OSError):  # the socket dies with the server
        async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
            metadata = await socket.recv()
            await socket.send_publish(UserInput(text="remember this"))
            await recv_until(socket, "assistant_end")
            # Events are stored off the hot path, and a crash loses the writes still queued: kill the
            # server once the user's message is stored (the chat still ACTIVE).
            async with asyncio.timeout(WAIT_S):
                while True:
                    live = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id, page_size=100)
                    assert live.response.status == "ACTIVE"
                    if "USER_MESSAGE" in types_of(live.items or []):
                        break
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(crash_server.kill)
    await asyncio.to_thread(crash_server.start)
    chat, events = await history(client, metadata.chat_id)
    assert chat.status == "ERROR" and chat.end_timestamp is not None
    types = types_of(events)
    assert types[0] == "CHAT_START_MESSAGE" and types[-1] == "CHAT_END_MESSAGE"
    assert "USER_MESSAGE" in types
    _, body = await wait_webhook(receiver, "chat_ended", metadata.chat_id)
    assert body["end_reason"] == "ERROR" and body["config_id"] == config_id


async def test_greeting_without_text_is_generated_and_not_repeated_on_resume(
    chat_server: ServerProcess, llm: ScriptedLLM
) -> None:
    def greeting(request: RecordedRequest) -> bool:
        return "Greet the user" in request.messages[0]["content"]

    llm.script(Reply("Hi, I am your assistant.", when=greeting), Reply("Fine."))
    config_id = await make_config(chat_server, event_messages={"on_new_chat": {"enabled": True}})
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        first = await socket.recv()
        opening = await recv_until(socket, "assistant_end")
    assert spoken(opening) == ["Hi, I am your assistant."]
    assert greeting(llm.requests[-1]) and llm.requests[-1].last_user_message is None
    await history(client, first.chat_id)

    asked_before = len(llm.requests)
    async with client.empathic_voice.chat.connect(config_id=config_id, resumed_chat_group_id=first.chat_group_id) as s:
        await s.recv()
        await s.send_publish(UserInput(text="how are you?"))
        messages = await recv_until(s, "assistant_end")
    assert spoken(messages) == ["Fine."]
    assert not any(greeting(r) for r in llm.requests[asked_before:])
    sent = [(m["role"], m["content"]) for m in llm.requests[-1].messages[1:]]
    assert sent == [("assistant", "Hi, I am your assistant."), ("user", "how are you?")]
