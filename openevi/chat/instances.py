"""Closing the chats of instances that died: every instance sweeps for chats whose home has no lease.

Each instance holds a lease in the shared bus (Redis), refreshed every heartbeat. A chat row names its
home (`chats.instance_id`). Every instance periodically looks at the homes of the ACTIVE chats; one
whose lease has been gone for a confirmation period (so a Redis restart, after which live instances
take their leases again within a heartbeat, kills nothing) is dead, and its chats are closed as ERROR
with their `chat_ended` webhooks. Closing claims each chat with a conditional UPDATE first, so when
several survivors sweep at once each chat is closed exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from openevi.chat.lifecycle import end_unattended_chat
from openevi.chat.runtime import ChatRuntime
from openevi.periodic import Periodic
from openevi.store.chats import ACTIVE
from openevi.store.db import transaction
from openevi.store.models import Chat

log = logging.getLogger("openevi.chat.instances")

AliveCheck = Callable[[Collection[str]], Awaitable[set[str] | None]]


class InstanceSweeper:
    """Periodically closes the ACTIVE chats of instances whose lease ran out."""

    def __init__(self, runtime: ChatRuntime, alive: AliveCheck, *, interval_s: float, confirm_s: float) -> None:
        self._runtime = runtime
        self._alive = alive
        self._interval_s = interval_s
        self._confirm_s = confirm_s
        self._missing_since: dict[str, float] = {}
        self._loop = Periodic("instance-sweeper", self.sweep, interval_s=interval_s)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> int:
        """One pass; returns how many chats this instance closed."""
        async with self._runtime.db() as s:
            homes = set(
                (
                    await s.scalars(
                        select(Chat.instance_id).where(Chat.status == ACTIVE, Chat.instance_id.is_not(None)).distinct()
                    )
                ).all()
            )
        others = {h for h in homes if h and h != self._runtime.instance_id}
        alive = await self._alive(others)
        if alive is None:  # the bus cannot tell (one process): nothing is known to be dead
            return 0
        now = time.monotonic()
        missing = others - alive
        self._missing_since = {h: self._missing_since.get(h, now) for h in missing}
        closed = 0
        for dead in sorted(missing):
            if now - self._missing_since[dead] >= self._confirm_s:
                closed += await close_chats_of(self._runtime, dead)
        return closed


async def close_chats_of(runtime: ChatRuntime, dead_instance: str, *, reason: str = "instance lost") -> int:
    """Close a dead instance's ACTIVE chats as ERROR; each chat is claimed first, so only one closer wins."""
    async with runtime.db() as s:
        chat_ids = list(
            (await s.scalars(select(Chat.id).where(Chat.status == ACTIVE, Chat.instance_id == dead_instance))).all()
        )
    closed = queued = 0
    for chat_id in chat_ids:
        async with transaction(runtime.db) as s:
            claim = cast(
                CursorResult[Any],
                await s.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.status == ACTIVE, Chat.instance_id == dead_instance)
                    .values(instance_id=runtime.instance_id)
                ),
            )
            if claim.rowcount != 1:
                continue  # another survivor (or the instance itself, restarted) got there first
            chat = await s.get(Chat, chat_id)
            if chat is None:
                continue
            queued += await end_unattended_chat(s, chat, message=reason)
            closed += 1
    if closed:
        log.warning("closed %d chat(s) of instance %s, whose lease ran out", closed, dead_instance)
    if queued:
        runtime.notify_webhooks()
    return closed
