"""The chat history port on the database: events, errors, webhooks and the end, written in order.

Every write is its own transaction (an event with the webhook deliveries it causes), run by the
chat's EventLog in the background, so the audio and text paths never wait for the store.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.chat.eventlog import EventLog
from openevi.chat.ports import ChatEnd, PastEvent
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from openevi.store import chats
from openevi.store.db import new_id, now_ms
from openevi.store.models import Chat
from openevi.webhooks import outbox


class StoredHistory:
    """ChatHistory on the store (see `chat/ports.py`)."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        account_id: str,
        chat_id: str,
        chat_group_id: str,
        on_deliveries: Any,
    ) -> None:
        self._factory = factory
        self._account_id = account_id
        self._chat_id = chat_id
        self._group_id = chat_group_id
        self._log = EventLog(factory, chat_id=chat_id, on_deliveries=on_deliveries)

    def start(self) -> None:
        self._log.start()

    def record(
        self,
        role: EventRole,
        type_: EventType,
        text: str | None = None,
        *,
        emotion_features: str | None = None,
        metadata: str | None = None,
        related_event_id: str | None = None,
    ) -> str:
        timestamp = now_ms()
        event_id = new_id()

        async def write(session: AsyncSession) -> bool:
            await chats.append_event(
                session,
                chat_id=self._chat_id,
                role=str(role),
                type=str(type_),
                message_text=text,
                timestamp=timestamp,
                event_id=event_id,
                emotion_features=emotion_features,
                metadata=metadata,
                related_event_id=related_event_id,
            )
            return False

        self._log.submit(write)
        return event_id

    def record_errors(self, errors: list[dict[str, Any]]) -> None:
        metadata = json.dumps({"errors": errors})

        async def write(session: AsyncSession) -> bool:
            chat = await chats.get_chat(session, account_id=self._account_id, chat_id=self._chat_id)
            chat.chat_metadata = metadata
            return False

        self._log.submit(write)

    def notify_tool_call(self, webhooks: list[dict[str, Any]], payload: dict[str, Any]) -> None:
        if not outbox.subscribed_urls(webhooks, "tool_call"):
            return

        async def write(session: AsyncSession) -> bool:
            count = await outbox.enqueue(
                session,
                account_id=self._account_id,
                chat_id=self._chat_id,
                webhooks=webhooks,
                event_name="tool_call",
                payload=payload,
            )
            return count > 0

        self._log.submit(write)

    def end(self, end: ChatEnd) -> None:
        async def write(session: AsyncSession) -> bool:
            return await store_chat_end(session, end) > 0

        self._log.submit(write)

    async def earlier_events(self) -> list[PastEvent]:
        async with self._factory() as session:
            events = await chats.all_group_events(session, account_id=self._account_id, group_id=self._group_id)
        return [e for e in events if e.chat_id != self._chat_id]

    async def wait_for_room(self) -> None:
        await self._log.wait_for_room()

    async def synced(self) -> None:
        await self._log.synced()

    async def close(self) -> None:
        await self._log.close()


async def store_chat_end(s: AsyncSession, end: ChatEnd) -> int:
    """CHAT_END_MESSAGE, the final status and the `chat_ended` webhook; returns deliveries queued.

    A chat ends once: if another closer got there first (a surviving instance closed the chats of one
    it thought dead, which then came back), nothing is written a second time."""
    chat = await s.get(Chat, end.chat_id, with_for_update=True)
    if chat is None:
        return 0
    if end.recording_bytes:  # the recording exists even if another closer ended the chat first
        await chats.charge_stored_bytes(s, chat_id=end.chat_id, size=end.recording_bytes)
    if chat.status != ChatStatus.ACTIVE:
        return 0
    await chats.append_event(
        s,
        chat_id=end.chat_id,
        role=str(EventRole.SYSTEM),
        type=str(EventType.CHAT_END_MESSAGE),
        message_text=end.message,
        timestamp=end.ended_ms,
    )
    await chats.end_chat(s, chat_id=end.chat_id, status=str(end.status), end_timestamp=end.ended_ms)
    return await outbox.enqueue(
        s,
        account_id=end.account_id,
        chat_id=end.chat_id,
        webhooks=end.webhooks,
        event_name="chat_ended",
        payload=outbox.chat_ended_payload(
            chat_id=end.chat_id,
            chat_group_id=end.chat_group_id,
            config_id=end.config_id,
            custom_session_id=end.custom_session_id,
            start_time_ms=end.started_ms,
            end_time_ms=end.ended_ms,
            end_reason=str(end.status),
            caller_number=end.caller.caller_number if end.caller else None,
            twilio_metadata=end.caller.twilio_metadata if end.caller else None,
        ),
    )
