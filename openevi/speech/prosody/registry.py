"""Prosody (emotion) providers by config name, imported only when asked for."""

from __future__ import annotations

from typing import Any, cast

from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.registry import Provider, build

__all__ = ["PROVIDERS", "ProsodyError", "Provider", "create_prosody"]


class ProsodyError(Exception):
    """A prosody provider is unknown or cannot be built."""


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
    return cast(ProsodyModel, build("prosody", name, PROVIDERS, ProsodyError, **options))
