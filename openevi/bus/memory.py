"""The single-process bus: live chats are a dict of handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from openevi.bus.base import Handler, LiveChat, Observed, OutboundQueue, Presence, StreamEnd


class MemoryBus:
    """ChatBus for one process (the embedded default)."""

    def __init__(self, *, instance_id: str = "local", observer_queue_max: int = 512) -> None:
        self.instance_id = instance_id
        self._observer_max = observer_queue_max
        self._handlers: dict[str, Handler] = {}
        self._presence: dict[str, Presence] = {}

    async def register(self, chat_id: str, handler: Handler, presence: Presence | None = None) -> None:
        self._handlers[chat_id] = handler
        if presence is not None:
            self._presence[chat_id] = presence

    async def unregister(self, chat_id: str) -> None:
        self._handlers.pop(chat_id, None)
        self._presence.pop(chat_id, None)

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        handler = self._handlers.get(chat_id)
        if handler is None:
            return False
        await handler(message)
        return True

    async def locate(self, chat_id: str) -> LiveChat | None:
        presence = self._presence.get(chat_id)
        if presence is None:
            return None
        return LiveChat(chat_id, self.instance_id, presence.account_id, presence.allow_connection)

    @asynccontextmanager
    async def observe(self, chat_id: str) -> AsyncIterator[asyncio.Queue[Observed]]:
        queue: asyncio.Queue[Observed] = asyncio.Queue()
        presence = self._presence.get(chat_id)
        if presence is None:
            queue.put_nowait(StreamEnd(1000, "chat ended"))
            yield queue
            return
        source = presence.outbound.subscribe()
        relay = asyncio.create_task(_relay(source, queue, presence, self._observer_max))
        try:
            yield queue
        finally:
            relay.cancel()
            presence.outbound.unsubscribe(source)
            await asyncio.gather(relay, return_exceptions=True)

    async def instances_alive(self, instance_ids: Collection[str]) -> set[str] | None:
        return None

    async def check(self) -> None:
        return None  # in this process: always there

    async def close(self) -> None:
        self._handlers.clear()
        self._presence.clear()


async def _relay(
    source: OutboundQueue, queue: asyncio.Queue[Observed], presence: Presence, limit: int
) -> None:
    while (message := await source.get()) is not None:
        if queue.qsize() >= limit:
            queue.put_nowait(StreamEnd(1013, "observer too slow"))
            return
        queue.put_nowait(message.to_dict())
    queue.put_nowait(StreamEnd(*presence.closing()))
