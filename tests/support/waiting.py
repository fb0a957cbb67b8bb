"""Polling for a condition that other tasks, threads or processes bring about."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_for(check: Callable[[], Any], what: str, limit_s: float = 60.0) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return that.

    `limit_s` is an upper bound for a slow machine, never an expectation: past it, AssertionError.
    """
    deadline = time.monotonic() + limit_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
