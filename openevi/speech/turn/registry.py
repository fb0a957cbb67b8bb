"""End-of-turn detectors by name (OPENEVI_TURN_DETECTOR): "silence" needs no model."""

from __future__ import annotations

from typing import Any, cast

from openevi.speech.registry import Provider, build
from openevi.speech.turn.base import EndOfTurnModel

__all__ = ["DETECTORS", "PROVIDERS", "TurnModelError", "create_turn_model"]


class TurnModelError(Exception):
    """An end-of-turn model is unknown or cannot be built."""


PROVIDERS: dict[str, Provider] = {
    "smart-turn": Provider(
        "openevi.speech.turn.smart_turn:SmartTurnModel",
        "pip install onnxruntime==1.32.0 faster-whisper==1.2.1",
    ),
}
DETECTORS = ("silence", *PROVIDERS)


def create_turn_model(name: str, **options: Any) -> EndOfTurnModel | None:
    """The model behind detector `name`; None for the silence-only detector."""
    if name == "silence":
        return None
    return cast(EndOfTurnModel, build("end-of-turn", name, PROVIDERS, TurnModelError, **options))
