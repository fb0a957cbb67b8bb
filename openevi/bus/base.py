"""Control-plane routing: deliver a message to the live chat that owns an id, wherever it runs.

A bus also knows where chats are live (`locate`), streams a chat's outbound messages to observer
sockets on any instance (`observe`), and says which instances are alive (their leases) so that the
chats of a dead one can be closed by the survivors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from openevi.chat.messages import ServerMessage

Handler = Callable[[dict[str, Any]], Awaitable[None]]
OutboundQueue = asyncio.Queue[ServerMessage | None]


class OutboundStream(Protocol):
    """A chat's outbound stream (`chat.ports.Fanout`): each subscriber queue gets every message, then None."""

    def subscribe(self) -> OutboundQueue: ...

    def unsubscribe(self, queue: OutboundQueue) -> None: ...


@dataclass(frozen=True)
class Presence:
    """What the home instance shares about a live chat: who owns it, whether observers may join, its stream."""

    account_id: str
    allow_connection: bool
    outbound: OutboundStream
    # The close code and reason for observer sockets once the stream ends (read at the end).
    closing: Callable[[], tuple[int, str]] = lambda: (1000, "")


@dataclass(frozen=True)
class LiveChat:
    """A live chat as any instance sees it."""

    chat_id: str
    instance_id: str
    account_id: str
    allow_connection: bool


@dataclass(frozen=True)
class StreamEnd:
    """The last item of an observed stream: close the observer socket with this code and reason."""

    code: int
    reason: str


Observed = dict[str, Any] | StreamEnd
"""An observed message in the EVI wire shape (observers are EVI sockets), or the end."""


class ChatBus(Protocol):
    """Routes control messages to live chats (in-process, or across instances)."""

    async def register(self, chat_id: str, handler: Handler, presence: Presence | None = None) -> None:
        """Make this process the home of a live chat."""

    async def unregister(self, chat_id: str) -> None:
        """The chat ended here."""

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        """Deliver a message to the live chat; False when no live chat has that id."""
        ...

    async def locate(self, chat_id: str) -> LiveChat | None:
        """Where the chat is live, or None."""
        ...

    def observe(self, chat_id: str) -> AbstractAsyncContextManager[asyncio.Queue[Observed]]:
        """The chat's outbound messages from now on, ending with a StreamEnd (bounded: a slow reader is cut off)."""
        ...

    async def instances_alive(self, instance_ids: Collection[str]) -> set[str] | None:
        """Which of these instances hold a live lease; None when this bus cannot tell (one process)."""
        ...

    async def check(self) -> None:
        """Raise unless the bus can be used now (the readiness check)."""
        ...

    async def close(self) -> None:
        """Release connections."""
