"""A chat's history writer: events are stored in order, off the audio/text hot path.

Each write is its own transaction (an event with the webhook deliveries it causes), so a crash
loses at most the writes still queued, never leaves half of one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.store.db import transaction

log = logging.getLogger("openevi.chat.eventlog")

# A write returns True when it queued webhook deliveries (the dispatcher is woken after commit).
Write = Callable[[AsyncSession], Awaitable[bool | None]]


class EventLog:
    """Serializes store writes for one chat in a background task."""

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], *, chat_id: str, on_deliveries: Callable[[], None]
    ) -> None:
        self._factory = factory
        self._on_deliveries = on_deliveries
        self._chat_id = chat_id
        self._queue: asyncio.Queue[Write | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"eventlog-{self._chat_id}")

    def submit(self, write: Write) -> None:
        """Queue a write; it runs after every write submitted before it."""
        self._queue.put_nowait(write)

    async def close(self) -> None:
        """Finish every queued write, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            if write is None:
                return
            for attempt in range(3):
                try:
                    async with transaction(self._factory) as session:
                        queued_deliveries = await write(session)
                    if queued_deliveries:
                        self._on_deliveries()
                    break
                except Exception:
                    # A database hiccup must not end the chat; retry, then record and move on.
                    if attempt == 2:
                        log.exception("chat %s: could not store an event", self._chat_id)
                    else:
                        await asyncio.sleep(0.05 * (attempt + 1))
