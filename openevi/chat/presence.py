"""Tells the bus what other instances need to know about a chat that goes live here.

The engine registers a chat with just its id and control handler; this wrapper adds the chat's
account, allow_connection and outbound stream from the live session, so that a cross-instance bus can
list the chat in its directory and stream it to observers elsewhere, without the engine knowing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from openevi.bus.base import ChatBus, Handler, LiveChat, Observed, Presence

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession


class SessionBus:
    """A ChatBus that fills in each registration's Presence from the runtime's live sessions."""

    def __init__(self, inner: ChatBus, sessions: dict[str, ChatSession]) -> None:
        self.inner = inner
        self._sessions = sessions

    async def register(self, chat_id: str, handler: Handler, presence: Presence | None = None) -> None:
        session = self._sessions.get(chat_id)
        if presence is None and session is not None:
            presence = presence_of(session)
        await self.inner.register(chat_id, handler, presence)

    async def unregister(self, chat_id: str) -> None:
        await self.inner.unregister(chat_id)

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        return await self.inner.publish(chat_id, message)

    async def locate(self, chat_id: str) -> LiveChat | None:
        return await self.inner.locate(chat_id)

    def observe(self, chat_id: str) -> AbstractAsyncContextManager[asyncio.Queue[Observed]]:
        return self.inner.observe(chat_id)

    async def instances_alive(self, instance_ids: Collection[str]) -> set[str] | None:
        return await self.inner.instances_alive(instance_ids)

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


def presence_of(session: ChatSession) -> Presence:
    """The session as other instances see it."""
    return Presence(
        account_id=session.account_id,
        allow_connection=session.allow_connection,
        outbound=session.outbound,
        closing=lambda: (session.close_code, session.close_reason),
    )
