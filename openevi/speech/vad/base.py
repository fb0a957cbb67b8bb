"""Voice activity detection: the probability that a short frame of audio is speech."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VADStream(Protocol):
    """Per-chat detector state (models like Silero are recurrent)."""

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of one frame: float32 mono at the detector's rate, `frame_samples` long."""
        ...

    def reset(self) -> None:
        """Forget the recurrent state (e.g. after a long silence)."""
        ...


class VoiceActivityDetector(Protocol):
    """A shared, loaded VAD model; `stream()` gives each chat its own state."""

    sample_rate: int
    frame_samples: int

    def stream(self) -> VADStream: ...
