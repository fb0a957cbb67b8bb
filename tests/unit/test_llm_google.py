"""Gemini provider against httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openevi.llm.base import GenerationRequest, LLMError, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.google import GoogleLLM, gemini_schema
from tests.support.silent_server import silent_server
from tests.support.sse_recorder import Recorder, collect


def _sse(*chunks: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks)


def _parts(*parts: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate]}


async def test_text_and_function_call() -> None:
    rec = Recorder(
        _sse(
            _parts({"text": "Let me "}),
            _parts(
                {"text": "see."}, {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}, finish="STOP"
            ),
        )
    )
    tool = ToolSpec(
        "get_weather",
        "Weather",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "properties": {"city": {"type": ["string", "null"], "description": "City"}},
            "required": ["city"],
        },
    )
    model = GoogleLLM(model="gemini-x", api_key="g-key", transport=rec.transport, temperature=0.2, max_tokens=50)
    request = GenerationRequest(messages=[Message("system", "Be brief."), Message("user", "Rome?")], tools=[tool])
    events = await collect(model, request)
    assert events[:2] == [TextDelta("Let me "), TextDelta("see.")]
    call = events[2]
    assert isinstance(call, ToolCall) and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Rome"}
    req = rec.requests[0]
    assert req.url.path == "/v1beta/models/gemini-x:streamGenerateContent"
    assert req.url.params["alt"] == "sse" and req.headers["x-goog-api-key"] == "g-key"
    body = json.loads(req.content)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Rome?"}]}]
    assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 50}
    (declaration,) = body["tools"][0]["functionDeclarations"]
    assert declaration["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string", "nullable": True, "description": "City"}},
        "required": ["city"],
    }


async def test_history_with_function_response() -> None:
    rec = Recorder(_sse(_parts({"text": "Warm."})))
    request = GenerationRequest(
        messages=[
            Message("user", "Rome?"),
            Message("assistant", "", tool_calls=(ToolCall("c1", "get_weather", '{"city":"Rome"}'),)),
            Message("tool", '{"temp": 30}', tool_call_id="c1"),
            Message("tool", "plain text", tool_call_id="c1", name="other"),
        ]
    )
    events = await collect(GoogleLLM(model="g", transport=rec.transport), request)
    assert events == [TextDelta("Warm.")]
    contents = json.loads(rec.requests[0].content)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 30}}},
            {"functionResponse": {"name": "other", "response": {"content": "plain text"}}},
        ],
    }


async def test_blocked_prompt() -> None:
    rec = Recorder(_sse({"promptFeedback": {"blockReason": "SAFETY"}}))
    with pytest.raises(LLMError) as info:
        await collect(
            GoogleLLM(model="g", transport=rec.transport), GenerationRequest(messages=[Message("user", "x")])
        )
    assert info.value.code == "llm_blocked"


async def test_http_error_message() -> None:
    body = json.dumps({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}})
    rec = Recorder(body, status=400)
    with pytest.raises(LLMError) as info:
        await collect(
            GoogleLLM(model="g", transport=rec.transport), GenerationRequest(messages=[Message("user", "x")])
        )
    assert info.value.code == "llm_bad_request" and "API key not valid." in str(info.value)


async def test_hung_server_times_out() -> None:
    async with silent_server() as url:
        model = GoogleLLM(model="g", base_url=url, read_timeout=0.3)
        with pytest.raises(LLMError) as info:
            await collect(model, GenerationRequest(messages=[Message("user", "x")]))
    assert info.value.code == "llm_timeout"


def test_schema_keeps_nested_items() -> None:
    schema = {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer", "const": 1}}}}
    assert gemini_schema(schema) == {
        "type": "array",
        "items": {"type": "object", "properties": {"a": {"type": "integer"}}},
    }


@pytest.mark.parametrize(
    "model", ["../../admin?", "..", "gemini/../../x", "gemini-2.0-flash?key=1", "a#b", "gemini%2F..", " gemini"]
)
def test_a_model_name_is_data_never_a_path(model: str) -> None:
    """A tenant's model_resource goes into the URL's path: `../../admin?` used to make the server POST
    to another endpoint of the Google base URL with the operator's key. Refused before any request."""
    rec = Recorder(_sse(_parts({"text": "hi"}, finish="STOP")))
    with pytest.raises(LLMError) as refused:
        GoogleLLM(model=model, api_key="operator-key", base_url="https://google.test", transport=rec.transport)
    assert refused.value.code == "llm_bad_config"
    assert rec.requests == []


async def test_real_model_names_keep_their_url() -> None:
    rec = Recorder(_sse(_parts({"text": "hi"}, finish="STOP")))
    for model in ("gemini-2.0-flash", "models/gemini-1.5-flash-002", "gemma-3-27b-it"):
        llm = GoogleLLM(model=model, base_url="https://google.test", transport=rec.transport)
        await collect(llm, GenerationRequest(messages=[Message(role="user", content="hi")]))
    assert [r.url.path for r in rec.requests] == [
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        "/v1beta/models/gemini-1.5-flash-002:streamGenerateContent",
        "/v1beta/models/gemma-3-27b-it:streamGenerateContent",
    ]
