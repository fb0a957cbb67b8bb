"""Provider selection from a config's `language_model`."""

from __future__ import annotations

from pathlib import Path

import pytest

from openevi.llm.anthropic import AnthropicLLM
from openevi.llm.base import LLMError
from openevi.llm.custom import CustomSSELanguageModel, CustomWebSocketLanguageModel
from openevi.llm.google import GoogleLLM
from openevi.llm.local import LocalLLM
from openevi.llm.openai_compat import OpenAICompatibleLLM
from openevi.llm.registry import create_language_model
from openevi.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        openai_api_key="sk-openai",
        groq_api_key="gsk",
        anthropic_api_key="sk-ant",
        google_api_key="g",
        llm_read_timeout_s=7.0,
    )


def test_default_is_local(settings: Settings) -> None:
    for spec in (None, {}, {"model_provider": "HUME_AI", "model_resource": "hume-evi-3"}):
        model = create_language_model(spec, settings)
        assert isinstance(model, LocalLLM)


def test_operator_default_provider(settings: Settings) -> None:
    settings = settings.model_copy(update={"llm_provider": "openai", "llm_model": "llama3.2"})
    model = create_language_model(None, settings)
    assert isinstance(model, OpenAICompatibleLLM) and model.model == "llama3.2"


async def test_openai_and_compatible_hosts(settings: Settings) -> None:
    model = create_language_model(
        {"model_provider": "OPEN_AI", "model_resource": "gpt-4o", "temperature": 0.4}, settings
    )
    assert isinstance(model, OpenAICompatibleLLM)
    assert model.url == "https://api.openai.com/v1/chat/completions" and model.model == "gpt-4o"
    assert model.temperature == 0.4
    groq = create_language_model({"model_provider": "GROQ"}, settings, api_key="session-key")
    assert isinstance(groq, OpenAICompatibleLLM) and groq.name == "groq"
    assert groq.url == "https://api.groq.com/openai/v1/chat/completions"
    assert groq._headers["Authorization"] == "Bearer session-key"  # the session's key wins
    expected = {
        "FIREWORKS": "https://api.fireworks.ai/inference/v1/chat/completions",
        "CEREBRAS": "https://api.cerebras.ai/v1/chat/completions",
        "SAMBANOVA": "https://api.sambanova.ai/v1/chat/completions",
        "X_AI": "https://api.x.ai/v1/chat/completions",
        "PERPLEXITY": "https://api.perplexity.ai/chat/completions",
    }
    for provider, url in expected.items():
        m = create_language_model({"model_provider": provider}, settings)
        assert isinstance(m, OpenAICompatibleLLM) and m.url == url and m.model
        await m.aclose()
    await model.aclose()
    await groq.aclose()


async def test_anthropic_google_custom(settings: Settings) -> None:
    a = create_language_model({"model_provider": "ANTHROPIC", "model_resource": "claude-x"}, settings)
    g = create_language_model({"model_provider": "GOOGLE", "model_resource": "gemini-x"}, settings)
    sse = create_language_model(
        {"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": "https://x.example/chat/completions"}, settings
    )
    ws = create_language_model(
        {"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": "wss://x.example/llm"}, settings
    )
    assert isinstance(a, AnthropicLLM) and a.model == "claude-x"
    assert isinstance(g, GoogleLLM) and g.model == "gemini-x"
    assert isinstance(sse, CustomSSELanguageModel) and isinstance(ws, CustomWebSocketLanguageModel)
    assert ws.read_timeout == 7.0
    for m in (a, g, sse, ws):
        await m.aclose()


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"model_provider": "AMAZON_BEDROCK", "model_resource": "x"}, "llm_unsupported_provider"),
        ({"model_provider": "NOPE"}, "llm_unsupported_provider"),
        ({"model_provider": "CUSTOM_LANGUAGE_MODEL"}, "llm_bad_config"),
    ],
)
def test_refusals(settings: Settings, spec: dict[str, str], code: str) -> None:
    with pytest.raises(LLMError) as info:
        create_language_model(spec, settings)
    assert info.value.code == code
    assert str(info.value)
