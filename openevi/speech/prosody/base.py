"""Emotion measures of speech: the 48 expression scores EVI reports for each utterance."""

from __future__ import annotations

from typing import Protocol

import numpy as np

EMOTIONS: tuple[str, ...] = (
    "admiration", "adoration", "aesthetic_appreciation", "amusement", "anger", "anxiety", "awe",
    "awkwardness", "boredom", "calmness", "concentration", "confusion", "contemplation", "contempt",
    "contentment", "craving", "desire", "determination", "disappointment", "disgust", "distress", "doubt",
    "ecstasy", "embarrassment", "empathic_pain", "entrancement", "envy", "excitement", "fear", "guilt",
    "horror", "interest", "joy", "love", "nostalgia", "pain", "pride", "realization", "relief", "romance",
    "sadness", "satisfaction", "shame", "surprise_negative", "surprise_positive", "sympathy", "tiredness",
    "triumph",
)  # fmt: skip


class ProsodyModel(Protocol):
    """Scores one utterance: every name in EMOTIONS mapped to a float in [0, 1]."""

    sample_rate: int

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        """float32 mono audio at `sample_rate`; `text` (the transcript) may refine the scores."""
        ...
