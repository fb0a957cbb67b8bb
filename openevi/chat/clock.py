"""The chat engine's clock port: where "now" and "wait" come from.

Timeouts, nudges and playback pacing read this instead of `time.monotonic()`/`asyncio.sleep`, so
a test can drive a chat's silence and time limits with a fake clock in microseconds of real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and sleeping against them."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until `seconds` have passed on this clock."""
        ...


class SystemClock:
    """The real clock: `time.monotonic()` and the event loop's `asyncio.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
