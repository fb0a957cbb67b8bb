"""A chat's birth and death in the store, whatever carries it (chat socket, phone call, restart).

`open_chat` stores the start (chat, group, CHAT_START_MESSAGE, `chat_started` webhook — one
transaction) and builds the ChatSession with its typed config and its stored history; the end
(CHAT_END_MESSAGE, status, `chat_ended` webhook — one transaction) is `stored_history.store_chat_end`,
used by a live session closing and by recovery for chats a crash left open.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from openevi.chat.config import ChatConfig
from openevi.chat.ports import ChatEnd, PhoneCaller
from openevi.chat.runtime import ChatRuntime
from openevi.chat.stored_history import StoredHistory, store_chat_end
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from openevi.services.configs import load_config
from openevi.store import chats
from openevi.store.db import now_ms, transaction
from openevi.store.errors import NotFoundError
from openevi.store.models import Chat
from openevi.webhooks import outbox

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession

__all__ = [
    "ChatRefused",
    "ChatRequest",
    "OpenedChat",
    "PhoneCaller",
    "end_unattended_chat",
    "open_chat",
]


class ChatRefused(Exception):
    """The chat cannot start (unknown config or chat group)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ChatRequest:
    """Everything needed to start a chat, however the client asked for it."""

    account_id: str
    config_id: str | None = None
    config_version: int | None = None
    resumed_chat_group_id: str | None = None
    custom_session_id: str | None = None
    allow_connection: bool = False
    verbose_transcription: bool = False
    caller: PhoneCaller | None = None


@dataclass(frozen=True)
class OpenedChat:
    session: ChatSession
    resumed: bool


async def open_chat(runtime: ChatRuntime, request: ChatRequest) -> OpenedChat:
    """Store the start of a chat and return its (not yet started) session."""
    from openevi.chat.session import ChatSession  # the session imports this module's neighbours

    config: dict[str, Any] | None = None
    caller = request.caller
    async with transaction(runtime.db) as s:
        if request.config_id:
            try:
                config = await load_config(
                    s, account_id=request.account_id, config_id=request.config_id, version=request.config_version
                )
            except NotFoundError as exc:
                raise ChatRefused(404, "config_not_found", str(exc)) from exc
        try:
            chat, group, resumed = await chats.start_chat(
                s,
                account_id=request.account_id,
                config_id=config["id"] if config else None,
                config_version=config["version"] if config else None,
                resumed_chat_group_id=request.resumed_chat_group_id,
                instance_id=runtime.instance_id,
            )
        except NotFoundError as exc:
            raise ChatRefused(404, "chat_group_not_found", str(exc)) from exc
        await chats.append_event(
            s,
            chat_id=chat.id,
            role=str(EventRole.SYSTEM),
            type=str(EventType.CHAT_START_MESSAGE),
            timestamp=chat.start_timestamp,
        )
        queued = await outbox.enqueue(
            s,
            account_id=request.account_id,
            chat_id=chat.id,
            webhooks=(config or {}).get("webhooks", []),
            event_name="chat_started",
            payload=outbox.chat_started_payload(
                chat_group_id=group.id,
                chat_id=chat.id,
                config_id=chat.config_id,
                start_time_ms=chat.start_timestamp,
                chat_start_type="resumed_chat_group" if resumed else "new_chat_group",
                custom_session_id=request.custom_session_id,
                caller_number=caller.caller_number if caller else None,
                twilio_metadata=caller.twilio_metadata if caller else None,
            ),
        )
    if queued:
        runtime.notify_webhooks()
    history = StoredHistory(
        runtime.db,
        account_id=request.account_id,
        chat_id=chat.id,
        chat_group_id=group.id,
        on_deliveries=runtime.notify_webhooks,
    )
    session = ChatSession(
        runtime,
        account_id=request.account_id,
        config=ChatConfig.from_rendered(config),
        history=history,
        chat_id=chat.id,
        chat_group_id=group.id,
        started_ms=chat.start_timestamp,
        allow_connection=request.allow_connection,
        verbose_transcription=request.verbose_transcription,
        phone_caller=caller,
    )
    return OpenedChat(session, resumed)


async def end_unattended_chat(s: AsyncSession, chat: Chat, *, message: str) -> int:
    """End, as ERROR, a chat whose serving process is gone (recovery at restart, the dead-instance
    sweeper): its config's webhooks are looked up again; returns the deliveries queued."""
    webhooks: list[dict[str, Any]] = []
    if chat.config_id:
        with contextlib.suppress(NotFoundError):
            config = await load_config(
                s, account_id=chat.account_id, config_id=chat.config_id, version=chat.config_version
            )
            webhooks = config.get("webhooks", [])
    return await store_chat_end(
        s,
        ChatEnd(
            account_id=chat.account_id,
            chat_id=chat.id,
            chat_group_id=chat.chat_group_id,
            config_id=chat.config_id,
            webhooks=webhooks,
            started_ms=chat.start_timestamp,
            ended_ms=now_ms(),
            status=ChatStatus.ERROR,
            message=message,
        ),
    )
