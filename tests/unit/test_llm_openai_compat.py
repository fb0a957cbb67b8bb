"""OpenAI-compatible provider: against the scripted server and httpx.MockTransport."""

from __future__ import annotations

import json

import httpx
import pytest

from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.http import SSEEvent, iter_sse
from openevi.llm.openai_compat import OpenAICompatibleLLM
from tests.support.scripted_llm import CallTool, Fail, Hang, Reply, ScriptedLLM
from tests.support.silent_server import silent_server
from tests.support.sse_recorder import collect

WEATHER = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})


def _request(text: str, **kwargs: object) -> GenerationRequest:
    return GenerationRequest(messages=[Message("system", "Be brief."), Message("user", text)], **kwargs)  # type: ignore[arg-type]


def _text(events: list[LLMEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_streams_text_and_sends_openai_body(scripted: ScriptedLLM) -> None:
    scripted.script(Reply("Hello there, friend.", when="hi"))
    model = OpenAICompatibleLLM(model="m1", base_url=scripted.base_url, api_key="sk-test", temperature=0.3)
    events = await collect(model, _request("hi", tools=[WEATHER], max_tokens=64))
    assert len(events) > 1 and all(isinstance(e, TextDelta) for e in events)
    assert _text(events) == "Hello there, friend."
    (sent,) = scripted.requests
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == "m1" and sent.body["stream"] is True
    assert sent.body["temperature"] == 0.3 and sent.body["max_tokens"] == 64
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent.body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": WEATHER.description, "parameters": WEATHER.parameters},
        }
    ]


async def test_request_temperature_overrides_default(scripted: ScriptedLLM) -> None:
    model = OpenAICompatibleLLM(model="m1", base_url=scripted.base_url, temperature=0.3)
    await collect(model, _request("x", temperature=0.9))
    assert scripted.requests[0].body["temperature"] == 0.9
    assert "authorization" not in scripted.requests[0].headers


async def test_tool_call_is_accumulated(scripted: ScriptedLLM) -> None:
    scripted.script(CallTool("get_weather", {"city": "Paris, France"}, text="Let me check.", call_id="call_7"))
    events = await collect(OpenAICompatibleLLM(model="m", base_url=scripted.base_url), _request("weather?"))
    assert events == [
        TextDelta("Let me check."),
        ToolCall(id="call_7", name="get_weather", arguments='{"city": "Paris, France"}'),
    ]


async def test_history_with_tool_results_is_sent_in_openai_shape(scripted: ScriptedLLM) -> None:
    call = ToolCall("call_1", "get_weather", '{"city":"Oslo"}')
    request = GenerationRequest(
        messages=[
            Message("user", "weather in Oslo?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", '{"temp": 3}', tool_call_id="call_1", name="get_weather"),
        ]
    )
    await collect(OpenAICompatibleLLM(model="m", base_url=scripted.base_url), request)
    messages = scripted.requests[0].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'}


async def test_http_error_carries_provider_message(scripted: ScriptedLLM) -> None:
    scripted.script(Fail(401, "Incorrect API key provided"))
    with pytest.raises(LLMError) as info:
        await collect(OpenAICompatibleLLM(model="m", base_url=scripted.base_url, name="groq"), _request("x"))
    assert info.value.code == "llm_auth"
    assert "groq" in str(info.value) and "401" in str(info.value) and "Incorrect API key provided" in str(info.value)


async def test_server_error_maps_to_unavailable(scripted: ScriptedLLM) -> None:
    scripted.script(Fail(500, "internal"))
    with pytest.raises(LLMError) as info:
        await collect(OpenAICompatibleLLM(model="m", base_url=scripted.base_url), _request("x"))
    assert info.value.code == "llm_unavailable"


async def test_stall_mid_stream_times_out(scripted: ScriptedLLM) -> None:
    scripted.script(Hang(after="Well"))
    # Long enough for "Well" to arrive first on a loaded machine (the stub answers at once).
    model = OpenAICompatibleLLM(model="m", base_url=scripted.base_url, read_timeout=1.0)
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError) as info:
        async for event in model.stream(_request("x")):
            seen.append(event)
    await model.aclose()
    assert info.value.code == "llm_timeout"
    assert _text(seen) == "Well"


async def test_hung_server_times_out() -> None:
    async with silent_server() as url:
        model = OpenAICompatibleLLM(model="m", base_url=url, read_timeout=0.3, connect_timeout=0.3)
        with pytest.raises(LLMError) as info:
            await collect(model, _request("x"))
    assert info.value.code == "llm_timeout"


async def test_unreachable_server() -> None:
    async with silent_server() as url:
        pass  # closed: nothing listens on that port now
    with pytest.raises(LLMError) as info:
        await collect(OpenAICompatibleLLM(model="m", base_url=url), _request("x"))
    assert info.value.code == "llm_unreachable"


def _sse_transport(*chunks: dict[str, object] | str, status: int = 200) -> httpx.MockTransport:
    body = "".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


def _delta(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_parallel_tool_calls_without_finish_reason() -> None:
    transport = _sse_transport(
        _delta({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "one", "arguments": '{"x"'}}]}),
        _delta({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "two", "arguments": ""}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        _delta({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        "[DONE]",
    )
    events = await collect(OpenAICompatibleLLM(model="m", transport=transport), _request("x"))
    assert events == [ToolCall("a", "one", '{"x": 1}'), ToolCall("b", "two", "{}")]


async def test_tool_call_without_id_gets_one() -> None:
    transport = _sse_transport(_delta({"tool_calls": [{"index": 0, "function": {"name": "f"}}]}, "tool_calls"))
    (event,) = await collect(OpenAICompatibleLLM(model="m", transport=transport), _request("x"))
    assert isinstance(event, ToolCall) and event.id.startswith("call_") and event.arguments == "{}"


async def test_error_chunk_mid_stream() -> None:
    transport = _sse_transport(_delta({"content": "Hi"}), {"error": {"message": "model overloaded"}})
    with pytest.raises(LLMError, match="model overloaded"):
        await collect(OpenAICompatibleLLM(model="m", transport=transport), _request("x"))


async def test_malformed_chunk() -> None:
    transport = _sse_transport("{not json")
    with pytest.raises(LLMError) as info:
        await collect(OpenAICompatibleLLM(model="m", transport=transport), _request("x"))
    assert info.value.code == "llm_bad_response"


async def test_sse_parser_handles_comments_multiline_and_crlf() -> None:
    raw = b": keep-alive\r\nevent: ping\r\ndata: a\r\ndata: b\r\n\r\ndata: c\n\ndata: tail"
    response = httpx.Response(200, content=raw)
    events = [e async for e in iter_sse(response)]
    assert events == [SSEEvent("ping", "a\nb"), SSEEvent("message", "c"), SSEEvent("message", "tail")]
