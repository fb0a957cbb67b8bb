"""The single-process bus: live chats are a dict of handlers."""

from __future__ import annotations

from typing import Any

from openevi.bus.base import Handler


class MemoryBus:
    """ChatBus for one process (the embedded default)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    async def register(self, chat_id: str, handler: Handler) -> None:
        self._handlers[chat_id] = handler

    async def unregister(self, chat_id: str) -> None:
        self._handlers.pop(chat_id, None)

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        handler = self._handlers.get(chat_id)
        if handler is None:
            return False
        await handler(message)
        return True

    async def close(self) -> None:
        self._handlers.clear()
