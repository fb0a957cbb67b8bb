"""Speech recognition: float32 mono audio in, text out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Transcript:
    """What was said; `language` is an ISO code when the model knows it."""

    text: str
    language: str | None = None


@dataclass(frozen=True)
class ASRCapabilities:
    """What the engine may rely on."""

    streaming: bool  # True: incremental interim results; False: call transcribe() on partial audio
    sample_rate: int


class SpeechRecognizer(Protocol):
    """A loaded recognizer shared by all chats. Calls may run concurrently (one per chat)."""

    capabilities: ASRCapabilities

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        """Transcribe one utterance (float32 mono at `capabilities.sample_rate`). Cancellable."""
        ...

    async def aclose(self) -> None: ...
