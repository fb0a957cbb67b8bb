"""The embedded local model: the real shipped GGUF, loaded by xllamacpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from openevi.llm.base import GenerationRequest, LLMError, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.local import DEFAULT_MODEL, LocalLLM, assemble, default_cache_dir, parse_text_tool_calls

WEATHER = ToolSpec(
    "get_weather", "Get the current weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)


@pytest.fixture(scope="module")
def model() -> LocalLLM:
    # The shared user cache: the model is assembled once per machine, not once per test run.
    return LocalLLM(cache_dir=default_cache_dir(), temperature=0.0)


async def test_answers_a_short_prompt(model: LocalLLM) -> None:
    request = GenerationRequest(
        messages=[Message("system", "You are a helpful assistant."), Message("user", "What is the capital of France?")]
    )
    events = [e async for e in model.stream(request)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert len(events) > 1, "tokens should stream one by one"
    assert "paris" in text.lower()
    assert len(text) < 400, "the voice style keeps replies short"


async def test_stopping_early_cancels_generation(model: LocalLLM) -> None:
    request = GenerationRequest(messages=[Message("user", "Tell me a long story about a dragon.")], max_tokens=400)
    async for _ in model.stream(request):
        break
    # The abandoned generation must not block the next request (a stuck engine would hang here).
    events = [e async for e in model.stream(GenerationRequest(messages=[Message("user", "Say hello.")], max_tokens=8))]
    assert events


async def test_tool_call(model: LocalLLM) -> None:
    request = GenerationRequest(messages=[Message("user", "What's the weather in Paris right now?")], tools=[WEATHER])
    events = [e async for e in model.stream(request)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls and calls[0].name == "get_weather" and "Paris" in calls[0].arguments


def test_parse_plain_json_tool_calls() -> None:
    (call,) = parse_text_tool_calls('```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', [WEATHER])
    assert call.name == "get_weather" and call.arguments == '{"city": "Oslo"}'
    assert parse_text_tool_calls('{"name": "unknown", "arguments": {}}', [WEATHER]) == []
    assert parse_text_tool_calls("Sure, it is sunny.", [WEATHER]) == []


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(LLMError) as info:
        LocalLLM(model_path=tmp_path / "nope.gguf").load()
    assert info.value.code == "llm_bad_config"


def test_assembly_is_verified(tmp_path: Path) -> None:
    path = assemble(DEFAULT_MODEL, default_cache_dir())
    assert path.stat().st_size == DEFAULT_MODEL.size
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
