"""Ends live chats whose API key was revoked.

Keys are revoked by `openevi keys revoke`, often from another process, straight in the database; so
every `OPENEVI_REVOCATION_CHECK_INTERVAL_S` one query asks which of the keys behind this process's
live chats are still live. A chat opened with a key that is not (or with an access token minted by
it) gets an `error`, ends with status ERROR, and its sockets are closed with code 1008 (policy
violation) and the reason "API key revoked". An observer socket opened with a revoked key (another
key of the same account: a rotation) is told and closed the same way; the chat it watched goes on.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.api.quotas import ChatAdmission, LiveChat
from openevi.periodic import Periodic
from openevi.schemas.chat_types import ChatStatus
from openevi.store import usage

log = logging.getLogger("openevi.api.revocation")

E_REVOKED = ("E0106", "api_key_revoked")
CLOSE_CODE = 1008
CLOSE_REASON = "API key revoked"
END_STATUS = ChatStatus.ERROR


class RevocationWatcher:
    """Background task: poll key liveness for the live chats, end the ones whose key is gone."""

    def __init__(
        self, admission: ChatAdmission, db: async_sessionmaker[AsyncSession], *, interval_s: float
    ) -> None:
        self._admission = admission
        self._db = db
        self._loop = Periodic("revocation-watch", self.sweep, interval_s=interval_s, wait_first=True)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> int:
        """One check; returns how many chats were ended."""
        live = self._admission.live_chats()
        observers = self._admission.observers.live()
        if not live and not observers:
            return 0
        async with self._db() as session:
            keys = {chat.key_id for chat in live} | {observer.key_id for observer in observers}
            alive = await usage.live_key_ids(session, keys)
        for observer in observers:
            if observer.key_id not in alive:
                observer.revoked.set()  # its pump tells it and closes it
        revoked = [chat for chat in live if chat.key_id not in alive]
        if revoked:
            await asyncio.gather(*(end_revoked(chat) for chat in revoked))
        return len(revoked)


async def end_revoked(chat: LiveChat) -> None:
    """Tell the chat's sockets why, then end it and close them with the policy code."""
    session = chat.session
    if session.status is not None:
        return
    log.info("chat %s: its API key was revoked; ending it", session.chat_id)
    session.emit_error(E_REVOKED, "The API key this chat was opened with has been revoked")
    session.close_code, session.close_reason = CLOSE_CODE, CLOSE_REASON
    await session.close(END_STATUS, reason="api_key_revoked")
