"""A background step repeated at an interval, for the process's watchers (revocation, dead instances)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("openevi.periodic")


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished unwinding."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Periodic:
    """Runs `step` every `interval_s` until stopped; a failing step is logged and tried again next time."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[Any]], *, interval_s: float, wait_first: bool = False
    ) -> None:
        self._name = name
        self._step = step
        self._interval_s = interval_s
        self._wait_first = wait_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        if self._wait_first:
            await asyncio.sleep(self._interval_s)
        while True:
            try:
                await self._step()
            except Exception:
                # A database or network hiccup: the next round tries again.
                log.exception("%s failed", self._name)
            await asyncio.sleep(self._interval_s)
