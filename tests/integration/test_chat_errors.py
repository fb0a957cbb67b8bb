"""Bad input and failing models: an `error` message, and the chat goes on; chats do not disturb each
other; refused connections; a client leaving mid-turn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import SessionSettings, Tool, UserInput

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.live_support import history, send_raw, types_of
from tests.server import ServerProcess
from tests.support.scripted_llm import CallTool, Fail, Hang, RecordedRequest, Reply, ScriptedLLM

LLM_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    """A server that gives up on a silent model after LLM_TIMEOUT_S (the whole answer), and on a
    client that does not answer a tool call likewise."""
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("chat-errors")),
        llm,
        OPENEVI_LLM_TIMEOUT_S=str(LLM_TIMEOUT_S),
        # The HTTP read timeout (each silence of the stream) is longer: the engine's bound must act first.
        OPENEVI_LLM_READ_TIMEOUT_S=str(LLM_TIMEOUT_S * 10),
        OPENEVI_TOOL_RESPONSE_TIMEOUT_S=str(LLM_TIMEOUT_S),
    )
    proc.start()
    yield proc
    proc.stop()


def spoken(messages: list[Any]) -> list[str]:
    return [m.message.content for m in of_type(messages, "assistant_message")]


async def still_answers(socket: Any, text: str = "still there?") -> None:
    await socket.send_publish(UserInput(text=text))
    messages = await recv_until(socket, "assistant_end")
    assert spoken(messages) == ["Still here."]


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ("{not json", "JSON"),
        ("[1, 2, 3]", "JSON"),
        ('{"type": "no_such_message", "text": "hi"}', ""),
        ('{"type": "user_input", "text": 123}', "text"),
        ('{"type": "user_input"}', "text"),
        ('{"type": "session_settings", "variables": "not a map"}', "variables"),
        ('{"type": "tool_response", "tool_call_id": 7, "content": "x"}', "tool_call_id"),
        ('{"type": "audio_input", "data": "%%% not base64 %%%"}', "base64"),
    ],
)
async def test_bad_messages_get_an_error_and_the_chat_goes_on(
    server: ServerProcess, llm: ScriptedLLM, frame: str, needle: str
) -> None:
    llm.script(Reply("Still here."))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await send_raw(socket, frame)
        error = (await recv_until(socket, "error"))[-1]
        assert error.code and error.slug and error.message
        assert needle in error.message
        await still_answers(socket)


async def test_model_failure_is_reported_and_kept(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Fail(500, "scripted meltdown", when="explode"), Reply("Still here."))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="please explode"))
        messages = await recv_until(socket, "assistant_end")
        errors = of_type(messages, "error")
        assert len(errors) == 1 and errors[0].slug == "language_model_error" and errors[0].code
        assert spoken(messages) == []
        await still_answers(socket)
    chat, events = await history(client, metadata.chat_id)
    stored = json.loads(chat.metadata or "{}")["errors"]
    assert [e["slug"] for e in stored] == ["language_model_error"]
    assert types_of(events).count("USER_MESSAGE") == 2


async def test_hanging_model_times_out(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Hang(when="stall silently"), Hang(when="stall midway", after="Let me think. "), Reply("Still here."))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="stall silently"))
        messages = await recv_until(socket, "assistant_end", limit_s=LLM_TIMEOUT_S + 30)
        errors = of_type(messages, "error")
        assert [e.slug for e in errors] == ["language_model_error"]
        assert "(timeout)" in errors[0].message  # the engine's bound, not the HTTP read timeout
        await still_answers(socket)

        await socket.send_publish(UserInput(text="stall midway"))
        messages = await recv_until(socket, "assistant_end", limit_s=LLM_TIMEOUT_S + 30)
        assert spoken(messages) == ["Let me think."]  # what came before the stall is still said
        assert [e.slug for e in of_type(messages, "error")] == ["language_model_error"]
        await still_answers(socket)


async def test_concurrent_chats_are_isolated(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(
        Reply("Alpha answer.", when="alpha", chunk_words=1, delay=0.05),
        Reply("Bravo answer.", when="bravo", chunk_words=1, delay=0.05),
        Fail(500, "charlie fails", when="charlie"),
    )
    client = client_for(server)

    async def chat(questions: list[str]) -> list[list[Any]]:
        turns = []
        async with client.empathic_voice.chat.connect() as socket:
            await socket.recv()
            for question in questions:
                await socket.send_publish(UserInput(text=question))
                turns.append(await recv_until(socket, "assistant_end"))
        return turns

    a, b, c = await asyncio.gather(
        chat(["alpha one", "alpha two"]), chat(["bravo one", "bravo two"]), chat(["charlie one", "alpha three"])
    )
    assert [spoken(t) for t in a] == [["Alpha answer."], ["Alpha answer."]]
    assert [spoken(t) for t in b] == [["Bravo answer."], ["Bravo answer."]]
    assert [spoken(t) for t in c] == [[], ["Alpha answer."]]
    assert not any(of_type(t, "error") for t in a + b)
    assert [m.message.content for t in a for m in of_type(t, "user_message")] == ["alpha one", "alpha two"]
    assert [m.message.content for t in b for m in of_type(t, "user_message")] == ["bravo one", "bravo two"]
    assert [e.slug for e in of_type(c[0], "error")] == ["language_model_error"]


async def test_client_leaving_mid_turn_keeps_history(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Hang(when="long story", after="Once upon a time. "))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="tell me a long story"))
        messages = await recv_until(socket, "assistant_message")
        assert spoken(messages) == ["Once upon a time."]
    chat, events = await history(client, metadata.chat_id)
    assert chat.status == "USER_ENDED"
    types = types_of(events)
    assert types[0] == "CHAT_START_MESSAGE" and types[-1] == "CHAT_END_MESSAGE"
    assert [e.message_text for e in events if e.type == "USER_MESSAGE"] == ["tell me a long story"]
    assert [e.message_text for e in events if e.type == "AGENT_MESSAGE"] == ["Once upon a time."]


async def test_bad_key_is_refused(server: ServerProcess) -> None:
    client = AsyncHumeClient(api_key="not-a-real-key", base_url=server.base_url)
    with pytest.raises(ApiError) as refused:
        async with client.empathic_voice.chat.connect():
            pass
    assert refused.value.status_code == 401


async def test_unknown_config_is_refused(server: ServerProcess) -> None:
    client = client_for(server)
    with pytest.raises(ApiError) as refused:
        async with client.empathic_voice.chat.connect(config_id="00000000-0000-4000-8000-000000000000"):
            pass
    assert refused.value.status_code == 404


async def test_unanswered_tool_call_falls_back(server: ServerProcess, llm: ScriptedLLM) -> None:
    def after_tool(request: RecordedRequest) -> bool:
        return bool(request.messages) and request.messages[-1].get("role") == "tool"

    llm.script(
        Reply("The lookup is unavailable.", when=after_tool),
        CallTool("slow_lookup", {}, call_id="call_slow", when="look it up"),
    )
    client = client_for(server)
    tool = Tool(type="function", name="slow_lookup", parameters="{}", fallback_content="Lookup timed out.")
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(tools=[tool]))
        await socket.send_publish(UserInput(text="look it up"))
        await recv_until(socket, "tool_call")
        messages = await recv_until(socket, "assistant_end", limit_s=LLM_TIMEOUT_S + 30)  # no answer sent
    assert spoken(messages) == ["The lookup is unavailable."]
    assert llm.requests[-1].messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_slow",
        "content": "Lookup timed out.",
    }
