"""Anthropic Messages API provider against httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openevi.llm.anthropic import AnthropicLLM
from openevi.llm.base import GenerationRequest, LLMError, Message, TextDelta, ToolCall, ToolSpec
from tests.support.silent_server import silent_server
from tests.support.sse_recorder import Recorder, collect


def _sse(*events: dict[str, Any]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


STREAM = _sse(
    {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Sure, "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "checking."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
    {"type": "message_stop"},
)


async def test_text_and_tool_use_stream() -> None:
    rec = Recorder(STREAM)
    model = AnthropicLLM(model="claude-x", api_key="sk-ant", transport=rec.transport, temperature=0.5)
    tool = ToolSpec("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    request = GenerationRequest(messages=[Message("system", "Be brief."), Message("user", "Oslo?")], tools=[tool])
    events = await collect(model, request)
    assert events == [
        TextDelta("Sure, "),
        TextDelta("checking."),
        ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}'),
    ]
    req = rec.requests[0]
    assert req.url.path == "/v1/messages"
    assert req.headers["x-api-key"] == "sk-ant" and req.headers["anthropic-version"] == "2023-06-01"
    body = rec.sent
    assert body["system"] == "Be brief." and body["stream"] is True and body["model"] == "claude-x"
    assert body["temperature"] == 0.5 and body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Oslo?"}]}]
    assert body["tools"] == [{"name": "get_weather", "description": "Weather", "input_schema": tool.parameters}]


async def test_tool_results_become_tool_result_blocks() -> None:
    rec = Recorder(_sse({"type": "message_stop"}))
    calls = (ToolCall("t1", "a", '{"x": 1}'), ToolCall("t2", "b", "{}"))
    request = GenerationRequest(
        messages=[
            Message("assistant", "Hello! How can I help?"),  # EVI's greeting comes first
            Message("user", "do both"),
            Message("assistant", "On it.", tool_calls=calls),
            Message("tool", "one", tool_call_id="t1"),
            Message("tool", "two", tool_call_id="t2"),
        ]
    )
    await collect(AnthropicLLM(model="m", transport=rec.transport), request)
    messages = rec.sent["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[3]["content"] == [
        {"type": "text", "text": "On it."},
        {"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": "t2", "name": "b", "input": {}},
    ]
    assert messages[4]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
    ]
    assert "system" not in rec.sent


async def test_http_error_message() -> None:
    body = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    rec = Recorder(body, status=401)
    with pytest.raises(LLMError) as info:
        await collect(
            AnthropicLLM(model="m", transport=rec.transport), GenerationRequest(messages=[Message("user", "x")])
        )
    assert info.value.code == "llm_auth" and "invalid x-api-key" in str(info.value)


async def test_error_event_mid_stream() -> None:
    rec = Recorder(_sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    with pytest.raises(LLMError, match="Overloaded"):
        await collect(
            AnthropicLLM(model="m", transport=rec.transport), GenerationRequest(messages=[Message("user", "x")])
        )


async def test_cut_inside_tool_call_is_an_error() -> None:
    rec = Recorder(
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a'}},
        )
    )
    with pytest.raises(LLMError) as info:
        await collect(
            AnthropicLLM(model="m", transport=rec.transport), GenerationRequest(messages=[Message("user", "x")])
        )
    assert info.value.code == "llm_bad_response"


async def test_hung_server_times_out() -> None:
    async with silent_server() as url:
        model = AnthropicLLM(model="m", base_url=url, read_timeout=0.3)
        with pytest.raises(LLMError) as info:
            await collect(model, GenerationRequest(messages=[Message("user", "x")]))
    assert info.value.code == "llm_timeout"
