"""Control-plane routing: deliver a message to the live chat that owns an id, wherever it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ChatBus(Protocol):
    """Routes control messages to live chats (in-process, or across instances)."""

    async def register(self, chat_id: str, handler: Handler) -> None:
        """Make this process the home of a live chat."""

    async def unregister(self, chat_id: str) -> None:
        """The chat ended here."""

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        """Deliver a message to the live chat; False when no live chat has that id."""

    async def close(self) -> None:
        """Release connections."""
