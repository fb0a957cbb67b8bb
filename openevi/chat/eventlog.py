"""A chat's history writer: events are stored in order, off the audio/text hot path.

Each write is its own transaction (an event with the webhook deliveries it causes), so a crash
loses at most the writes still queued, never leaves half of one.

`synced()` waits until every write submitted so far is committed: the chat socket calls it before
sending a message, so what a client saw is in the database even if the process is killed right
after (kill -9 used to lose a `user_message` the client had received up to 2.26 s earlier).

The queue is bounded by backpressure: a client's next message waits (`wait_for_room`) while more than
`HIGH_WATER` writes are queued, so what a chat has queued — and what a shutdown must still write —
stays small. The server's own writes (answers, the end) are always queued.
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

# Writes queued before a client's next message waits; it goes on once the queue is half as long.
HIGH_WATER = 64


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
        self._room = asyncio.Event()
        self._room.set()
        self._submitted = 0  # writes submitted so far
        self._finished = 0  # of those, committed (or given up on after retries)
        self._progress = asyncio.Condition()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"eventlog-{self._chat_id}")

    def submit(self, write: Write) -> None:
        """Queue a write; it runs after every write submitted before it."""
        self._submitted += 1
        self._queue.put_nowait(write)

    async def synced(self) -> None:
        """Return once every write submitted before this call is committed (at once if none is
        pending, or if no writer runs)."""
        target = self._submitted
        if self._finished >= target:
            return
        async with self._progress:
            await self._progress.wait_for(
                lambda: self._finished >= target or self._task is None or self._task.done()
            )

    async def wait_for_room(self) -> None:
        """Wait while more than `HIGH_WATER` writes are queued (not when no writer runs)."""
        while self._queue.qsize() > HIGH_WATER and self._task is not None and not self._task.done():
            self._room.clear()
            await self._room.wait()

    async def close(self) -> None:
        """Finish every queued write, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            self._room.set()  # nobody waits for a writer that is gone
            async with self._progress:
                self._progress.notify_all()

    async def _drain(self) -> None:
        while True:
            if self._queue.qsize() <= HIGH_WATER // 2:
                self._room.set()
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
            self._finished += 1
            async with self._progress:
                self._progress.notify_all()
