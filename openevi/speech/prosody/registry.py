"""Prosody (emotion) providers by config name, imported only when asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast

from openevi.speech.prosody.base import ProsodyModel

__all__ = ["PROVIDERS", "ProsodyError", "Provider", "create_prosody"]


class ProsodyError(Exception):
    """A prosody provider is unknown or cannot be built."""


@dataclass(frozen=True)
class Provider:
    """Where a provider lives and what to install when its dependencies are missing."""

    target: str  # "package.module:Class"
    install: str


# Adding a provider (e.g. a trained model): one module implementing ProsodyModel, plus one line here.
PROVIDERS: dict[str, Provider] = {
    "acoustic": Provider("openevi.speech.prosody.acoustic:AcousticProsody", "pip install vaderSentiment==3.3.2"),
    # openSMILE's binaries are licensed for non-commercial use only (docs/prosody.md): opt-in extra.
    "opensmile": Provider(
        "openevi.speech.prosody.egemaps:OpenSmileProsody",
        "pip install 'openevi[opensmile]' (opensmile==2.6.0: audEERING research licence, non-commercial use only)",
    ),
}


def create_prosody(name: str, **options: Any) -> ProsodyModel:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    provider = PROVIDERS.get(name)
    if provider is None:
        raise ProsodyError(f"Unknown prosody provider {name!r}; known: {', '.join(sorted(PROVIDERS))}")
    module_name, _, class_name = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Our own module missing is a packaging bug, not a missing optional dependency.
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise
        raise ProsodyError(
            f"Prosody provider {name!r} needs {exc.name!r}, which is not installed: {provider.install}"
        ) from exc
    factory = getattr(module, class_name)
    return cast(ProsodyModel, factory(**options))
