"""Tools in a live chat: config tools and session tools reach the client as `tool_call`; its answer
(or error) continues the turn; built-ins run on the server (hang_up ends the chat, web_search asks the
configured backend)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hume import AsyncHumeClient
from hume.empathic_voice import (
    BuiltinToolConfig,
    SessionSettings,
    Tool,
    ToolErrorMessage,
    ToolResponseMessage,
    UserInput,
)
from websockets.exceptions import ConnectionClosed

from tests.integration.chat_support import client_for, last_is, of_type, recv_until, scripted_server
from tests.integration.live_support import (
    WAIT_S,
    FakeSearch,
    history,
    make_config,
    make_tool,
    types_of,
    wait_webhook,
)
from tests.server import ServerProcess
from tests.support.scripted_llm import CallTool, RecordedRequest, Reply, ScriptedLLM
from tests.webhook_receiver import Receiver

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SEARCH_ANSWER = "openevi 1.0 was released on the first of May."


@pytest.fixture(scope="module")
def search() -> Iterator[FakeSearch]:
    fake = FakeSearch(SEARCH_ANSWER).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def search_server(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, search: FakeSearch
) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("chat-search")), llm, OPENEVI_WEB_SEARCH_URL=f"{search.url}?q={{query}}"
    )
    proc.start()
    yield proc
    proc.stop()


def named(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


async def weather_config(server: ServerProcess) -> tuple[AsyncHumeClient, str, str]:
    """A client of `server`, a new weather tool's name, and a config holding just that tool."""
    client = client_for(server)
    name = named("get_weather")
    ref = await make_tool(client, name, WEATHER)
    return client, name, await make_config(server, tools=[ref])


async def test_config_tool_call_response_continues_the_turn(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client = client_for(chat_server)
    name = named("get_weather")
    ref = await make_tool(client, name, WEATHER, description="Current weather", fallback_content="No weather now.")
    config_id = await make_config(chat_server, tools=[ref])
    llm.script(
        CallTool(name, {"city": "Lyon"}, call_id="call_w1", when=last_is("user")),
        Reply("It is 21 degrees in Lyon.", when=last_is("tool")),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="weather in Lyon?"))
        before = await recv_until(socket, "tool_call")
        call = before[-1]
        assert (call.name, call.tool_call_id, call.tool_type, call.response_required) == (
            name,
            "call_w1",
            "function",
            True,
        )
        assert json.loads(call.parameters) == {"city": "Lyon"}
        assert not of_type(before, "assistant_end")  # the turn waits for the client
        await socket.send_publish(ToolResponseMessage(tool_call_id="call_w1", content='{"temp_c": 21}'))
        after = await recv_until(socket, "assistant_end")

    echoed = of_type(after, "tool_response")
    assert [(e.tool_call_id, e.content) for e in echoed] == [("call_w1", '{"temp_c": 21}')]
    assert [m.message.content for m in of_type(after, "assistant_message")] == ["It is 21 degrees in Lyon."]
    assert of_type(after, "audio_output")

    first = next(r for r in llm.requests if r.last_user_message == "weather in Lyon?")
    assert first.tool_names == [name]
    tool_spec = first.body["tools"][0]["function"]
    assert tool_spec["parameters"] == WEATHER and tool_spec["description"] == "Current weather"
    follow = llm.requests[-1]
    assert follow.messages[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp_c": 21}'}
    calls = follow.messages[-2]["tool_calls"]
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("call_w1", name, {"city": "Lyon"})
    ]

    _, events = await history(client, metadata.chat_id)
    calls_stored = [e for e in events if e.type == "FUNCTION_CALL"]
    responses = [e for e in events if e.type == "FUNCTION_CALL_RESPONSE"]
    assert len(calls_stored) == 1 and len(responses) == 1
    assert json.loads(calls_stored[0].message_text) == {"city": "Lyon"}
    meta = json.loads(calls_stored[0].metadata)
    assert (meta["tool_call_id"], meta["name"], meta["tool_type"]) == ("call_w1", name, "function")
    assert responses[0].message_text == '{"temp_c": 21}' and responses[0].role == "TOOL"
    types = types_of(events)
    assert types.index("FUNCTION_CALL") < types.index("FUNCTION_CALL_RESPONSE") < types.index("AGENT_MESSAGE")


async def test_tool_error_uses_content_or_the_fallback(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client = client_for(chat_server)
    name = named("get_weather")
    ref = await make_tool(client, name, WEATHER, fallback_content="The weather service is unavailable.")
    config_id = await make_config(chat_server, tools=[ref])
    llm.script(
        CallTool(name, {"city": "Oslo"}, call_id="call_e1", when=last_is("user")),
        Reply("Sorry about that.", when=last_is("tool")),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="weather in Oslo?"))
        await recv_until(socket, "tool_call")
        await socket.send_publish(
            ToolErrorMessage(tool_call_id="call_e1", error="HTTP 503", content="Weather is down, try later.")
        )
        after = await recv_until(socket, "assistant_end")
        assert [e.tool_call_id for e in of_type(after, "tool_error")] == ["call_e1"]
        assert [m.message.content for m in of_type(after, "assistant_message")] == ["Sorry about that."]
        assert llm.requests[-1].messages[-1]["content"] == "Weather is down, try later."

        await socket.send_publish(UserInput(text="and in Bergen?"))
        await recv_until(socket, "tool_call")
        await socket.send_publish(ToolErrorMessage(tool_call_id="call_e1", error="HTTP 503"))
        after = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(after, "assistant_message")] == ["Sorry about that."]
        assert llm.requests[-1].messages[-1]["content"] == "The weather service is unavailable."


async def test_session_tools_are_offered_and_called(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    name = named("lookup_order")
    llm.script(
        CallTool(name, {"order": "A-17"}, call_id="call_s1", when=last_is("user")),
        Reply("Your order ships tomorrow.", when=last_is("tool")),
    )
    client = client_for(chat_server)
    tool = Tool(
        type="function",
        name=name,
        parameters=json.dumps({"type": "object", "properties": {"order": {"type": "string"}}}),
        description="Find an order",
        fallback_content="Orders are unavailable.",
    )
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(tools=[tool]))
        await recv_until(socket, "session_settings")
        await socket.send_publish(UserInput(text="where is order A-17?"))
        call = (await recv_until(socket, "tool_call"))[-1]
        assert (call.name, call.tool_type, json.loads(call.parameters)) == (name, "function", {"order": "A-17"})
        await socket.send_publish(ToolResponseMessage(tool_call_id=call.tool_call_id, content="ships tomorrow"))
        after = await recv_until(socket, "assistant_end")
    assert [m.message.content for m in of_type(after, "assistant_message")] == ["Your order ships tomorrow."]
    first = next(r for r in llm.requests if r.last_user_message == "where is order A-17?")
    assert first.tool_names == [name]
    assert llm.requests[-1].messages[-1]["content"] == "ships tomorrow"


async def test_hang_up_ends_the_chat(chat_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver) -> None:
    client = client_for(chat_server)
    config_id = await make_config(
        chat_server,
        builtin_tools=[{"name": "hang_up"}],
        webhooks=[{"url": receiver.url("/tools"), "events": ["chat_ended"]}],
    )
    llm.script(CallTool("hang_up", {}, call_id="call_bye", text="Goodbye! ", when=last_is("user")))
    seen: list[Any] = []
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="bye now"))
        with pytest.raises(ConnectionClosed):  # the server closes the socket
            async with asyncio.timeout(WAIT_S):
                while True:
                    seen.append(await socket.recv())
    assert [m.message.content for m in of_type(seen, "assistant_message")] == ["Goodbye!"]
    responses = of_type(seen, "tool_response")
    assert [(r.tool_call_id, r.tool_type) for r in responses] == [("call_bye", "builtin")]
    assert of_type(seen, "tool_call") == []  # built-ins are not the client's to answer
    assert llm.requests[-1].last_user_message == "bye now" and "hang_up" in llm.requests[-1].tool_names

    chat, events = await history(client, metadata.chat_id)
    assert chat.status == "USER_ENDED"
    assert "FUNCTION_CALL" in types_of(events) and types_of(events)[-1] == "CHAT_END_MESSAGE"
    _, body = await wait_webhook(receiver, "chat_ended", metadata.chat_id)
    assert body["end_reason"] == "USER_ENDED" and body["config_id"] == config_id


async def test_web_search_is_not_offered_without_a_backend(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client = client_for(chat_server)
    config_id = await make_config(chat_server, builtin_tools=[{"name": "web_search"}, {"name": "hang_up"}])
    llm.script(Reply("No search here."))
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="search offered?"))
        await recv_until(socket, "assistant_end")
    request = next(r for r in llm.requests if r.last_user_message == "search offered?")
    assert request.tool_names == ["hang_up"]


async def test_web_search_runs_on_the_server(
    search_server: ServerProcess, llm: ScriptedLLM, search: FakeSearch
) -> None:
    client = client_for(search_server)
    config_id = await make_config(search_server, builtin_tools=[{"name": "web_search"}])
    llm.script(
        CallTool("web_search", {"query": "openevi release date"}, call_id="call_ws", when=last_is("user")),
        Reply("It came out in May.", when=last_is("tool")),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="when was openevi released?"))
        messages = await recv_until(socket, "assistant_end")
    first = next(r for r in llm.requests if r.last_user_message == "when was openevi released?")
    assert first.tool_names == ["web_search"]
    assert search.queries == ["openevi release date"]
    responses = of_type(messages, "tool_response")
    assert [(r.tool_call_id, r.tool_name, r.tool_type, r.content) for r in responses] == [
        ("call_ws", "web_search", "builtin", SEARCH_ANSWER)
    ]
    assert llm.requests[-1].messages[-1] == {"role": "tool", "tool_call_id": "call_ws", "content": SEARCH_ANSWER}
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["It came out in May."]

    _, events = await history(client, metadata.chat_id)
    response = next(e for e in events if e.type == "FUNCTION_CALL_RESPONSE")
    assert response.message_text == SEARCH_ANSWER
    assert json.loads(response.metadata)["tool_type"] == "builtin"


async def test_resumed_chat_replays_tool_turns(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client, name, config_id = await weather_config(chat_server)
    llm.script(
        CallTool(name, {"city": "Rome"}, call_id="call_r1", when=last_is("user")),
        Reply("Rome is warm.", when=last_is("tool")),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        first = await socket.recv()
        await socket.send_publish(UserInput(text="weather in Rome?"))
        await recv_until(socket, "tool_call")
        await socket.send_publish(ToolResponseMessage(tool_call_id="call_r1", content="28C"))
        await recv_until(socket, "assistant_end")
    await history(client, first.chat_id)

    llm.script(Reply("You asked about Rome."))
    async with client.empathic_voice.chat.connect(config_id=config_id, resumed_chat_group_id=first.chat_group_id) as s:
        await s.recv()
        await s.send_publish(UserInput(text="what did I ask?"))
        await recv_until(s, "assistant_end")
    sent = llm.requests[-1].messages[1:]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["id"] == "call_r1" and sent[2]["tool_call_id"] == "call_r1"
    assert (sent[2]["content"], sent[3]["content"]) == ("28C", "Rome is warm.")


async def test_tool_response_through_the_control_plane(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client, name, config_id = await weather_config(chat_server)
    llm.script(
        CallTool(name, {"city": "Kyiv"}, call_id="call_cp", when=last_is("user")),
        Reply("Kyiv is cool.", when=last_is("tool")),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="weather in Kyiv?"))
        await recv_until(socket, "tool_call")
        await client.empathic_voice.control_plane.send(
            chat_id=metadata.chat_id, request=ToolResponseMessage(tool_call_id="call_cp", content="12C")
        )
        after = await recv_until(socket, "assistant_end")
    assert [r.content for r in of_type(after, "tool_response")] == ["12C"]
    assert [m.message.content for m in of_type(after, "assistant_message")] == ["Kyiv is cool."]
    assert llm.requests[-1].messages[-1]["content"] == "12C"


def answered_calls_only(request: RecordedRequest) -> None:
    """Every tool call sent to the model has its result (OpenAI-style APIs reject the request otherwise)."""
    answered = {m.get("tool_call_id") for m in request.messages if m["role"] == "tool"}
    for message in request.messages:
        for call in message.get("tool_calls") or []:
            assert call["id"] in answered, f"tool call {call['id']} has no result in {request.messages}"


async def test_user_speaking_during_a_tool_call_leaves_no_dangling_call(
    chat_server: ServerProcess, llm: ScriptedLLM
) -> None:
    client, name, config_id = await weather_config(chat_server)
    llm.script(
        CallTool(name, {"city": "Paris"}, call_id="call_x1", when="weather in paris"),
        Reply("Okay, never mind.", when="never mind"),
        Reply("Back again."),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="weather in Paris?"))
        await recv_until(socket, "tool_call")
        await socket.send_publish(UserInput(text="never mind"))  # before the tool answered
        seen = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(seen, "assistant_message")] == ["Okay, never mind."]
        await socket.send_publish(ToolResponseMessage(tool_call_id="call_x1", content="too late"))
        late = (await recv_until(socket, "error"))[-1]
        assert "call_x1" in late.message
        await socket.send_publish(UserInput(text="hello again"))
        await recv_until(socket, "assistant_end")
    for request in llm.requests[-2:]:
        answered_calls_only(request)
    assert llm.requests[-1].last_user_message == "hello again"
    _, events = await history(client, metadata.chat_id)
    assert types_of(events).count("FUNCTION_CALL") == 1


async def test_session_builtin_tools_keep_the_config_tools(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client, name, config_id = await weather_config(chat_server)
    llm.script(CallTool("hang_up", {}, call_id="call_end", text="Bye. ", when="goodbye"), Reply("Hi."))
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(builtin_tools=[BuiltinToolConfig(name="hang_up")]))
        await recv_until(socket, "session_settings")
        await socket.send_publish(UserInput(text="goodbye"))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT_S):
                while True:
                    await socket.recv()
    request = next(r for r in llm.requests if r.last_user_message == "goodbye")
    assert sorted(request.tool_names) == sorted([name, "hang_up"])
    chat, _ = await history(client, metadata.chat_id)
    assert chat.status == "USER_ENDED"


async def test_unknown_tool_and_chained_calls(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    name = named("step")
    tool = Tool(type="function", name=name, parameters="{}", description="One step")

    def tool_results(count: int) -> Any:
        def match(request: RecordedRequest) -> bool:
            results = [m for m in request.messages if m["role"] == "tool"]
            return last_is("tool")(request) and len(results) == count

        return match

    llm.script(
        CallTool("not_offered", {}, call_id="call_u", when=last_is("user")),
        CallTool(name, {"n": 1}, call_id="call_1", when=tool_results(1)),
        CallTool(name, {"n": 2}, call_id="call_2", when=tool_results(2)),
        Reply("All steps done.", when=tool_results(3)),
    )
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(tools=[tool]))
        await recv_until(socket, "session_settings")
        await socket.send_publish(UserInput(text="do the steps"))
        for call_id in ("call_1", "call_2"):
            call = (await recv_until(socket, "tool_call"))[-1]
            assert (call.tool_call_id, call.name) == (call_id, name)
            await socket.send_publish(ToolResponseMessage(tool_call_id=call_id, content=f"done {call_id}"))
        messages = await recv_until(socket, "assistant_end")
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["All steps done."]
    final = llm.requests[-1]
    answered_calls_only(final)
    results = [(m["tool_call_id"], m["content"]) for m in final.messages if m["role"] == "tool"]
    assert results[0][0] == "call_u" and "not_offered" in results[0][1]
    assert results[1:] == [("call_1", "done call_1"), ("call_2", "done call_2")]
