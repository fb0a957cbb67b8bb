"""The text-to-speech contract: text in, 16-bit mono PCM chunks out, as soon as they exist."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from openevi.speech.voices import Voice


class TTSError(Exception):
    """Synthesis failed."""


class TextToSpeech(Protocol):
    """A speech synthesizer. Chunks are little-endian int16 mono PCM at `sample_rate`."""

    sample_rate: int

    def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        """Stream audio for one sentence or clause, as early as possible; closing the generator stops the work."""
        ...

    async def aclose(self) -> None:
        """Release model handles."""
        ...
