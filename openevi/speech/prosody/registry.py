"""Prosody (emotion) providers by config name, imported only when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.registry import Provider, build

if TYPE_CHECKING:
    from openevi.settings import Settings

__all__ = ["PROVIDERS", "ProsodyError", "Provider", "create_prosody", "provider_options"]


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
    # A trained model you bring (ONNX classifier or VAD regressor + a JSON label map; docs/prosody.md).
    "onnx": Provider("openevi.speech.prosody.onnx_model:OnnxProsody", "pip install onnxruntime==1.32.0"),
}


def create_prosody(name: str, **options: Any) -> ProsodyModel:
    """Build the provider registered as `name`; `options` go to its constructor as keywords."""
    return cast(ProsodyModel, build("prosody", name, PROVIDERS, ProsodyError, **options))


def provider_options(name: str, settings: Settings) -> dict[str, Any]:
    """Constructor keywords for provider `name` from the server settings."""
    if name == "onnx":
        return {
            "model_path": settings.prosody_onnx_model,
            "label_map": settings.prosody_onnx_labels,
            "input_kind": settings.prosody_onnx_input,
        }
    return {}
