"""Chats left ACTIVE by a process that died are closed when that instance starts again."""

from __future__ import annotations

import logging
from pathlib import Path

from openevi.chat.lifecycle import end_unattended_chat
from openevi.chat.runtime import ChatRuntime
from openevi.store import chats
from openevi.store.db import new_id, transaction

log = logging.getLogger("openevi.chat.recovery")


def instance_id_for(data_dir: Path, configured: str | None) -> str:
    """A stable name for this instance: configured, or kept in the data dir across restarts."""
    if configured:
        return configured
    path = data_dir / "instance_id"
    if path.exists():
        return path.read_text().strip()
    value = new_id()
    path.write_text(value)
    return value


async def close_orphans(runtime: ChatRuntime) -> int:
    """Close this instance's chats that were live when it last stopped, with status ERROR."""
    async with runtime.db() as s:
        orphans = await chats.orphaned_chats(s, instance_id=runtime.instance_id)
    queued = 0
    for chat in orphans:
        async with transaction(runtime.db) as s:
            queued += await end_unattended_chat(s, chat, message="server restarted")
    if orphans:
        log.warning("closed %d chat(s) left active by the previous run", len(orphans))
    if queued:
        runtime.notify_webhooks()
    return len(orphans)
