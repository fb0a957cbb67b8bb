"""An end-of-turn model: the probability that what the user said so far is a finished turn."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class EndOfTurnModel(Protocol):
    """A shared, loaded model (one for all chats); calls run off the event loop."""

    sample_rate: int

    async def probability(self, audio: np.ndarray) -> float:
        """P(complete) of a turn whose audio (float32 mono at `sample_rate`) ends here."""
        ...

    async def load(self) -> None:
        """Load the model now rather than at the first check."""
        ...

    async def aclose(self) -> None: ...
