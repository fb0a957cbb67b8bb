"""A chat's birth and death in the store, whatever carries it (chat socket, phone call, restart).

`open_chat` stores the start (chat, group, CHAT_START_MESSAGE, `chat_started` webhook — one
transaction) and builds the ChatSession; `store_chat_end` writes the end (CHAT_END_MESSAGE, status,
`chat_ended` webhook — one transaction) for a live session closing and for chats a crash left open.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from openevi.chat.runtime import ChatRuntime
from openevi.services.configs import load_config
from openevi.store import chats
from openevi.store.db import transaction
from openevi.store.errors import NotFoundError
from openevi.webhooks import outbox

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession


class ChatRefused(Exception):
    """The chat cannot start (unknown config or chat group)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class PhoneCaller:
    """Who is on the line, for the webhooks of a chat that is a phone call."""

    caller_number: str | None
    twilio_metadata: dict[str, str] = field(default_factory=dict)


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


# Phone details of live sessions, for their chat_ended webhook (dropped with the session).
_callers: weakref.WeakKeyDictionary[ChatSession, PhoneCaller] = weakref.WeakKeyDictionary()


def caller_of(session: ChatSession) -> PhoneCaller | None:
    """The phone caller of a chat that is a call, else None."""
    return _callers.get(session)


async def open_chat(runtime: ChatRuntime, request: ChatRequest) -> OpenedChat:
    """Store the start of a chat and return its (not yet started) session."""
    from openevi.chat.session import ChatSession  # the session stores its end through this module

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
            s, chat_id=chat.id, role="SYSTEM", type="CHAT_START_MESSAGE", timestamp=chat.start_timestamp
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
    session = ChatSession(
        runtime,
        account_id=request.account_id,
        config=config,
        chat_id=chat.id,
        chat_group_id=group.id,
        started_ms=chat.start_timestamp,
        allow_connection=request.allow_connection,
        verbose_transcription=request.verbose_transcription,
    )
    if caller is not None:
        _callers[session] = caller
    return OpenedChat(session, resumed)


@dataclass(frozen=True)
class ChatEnd:
    """What ending a chat stores."""

    account_id: str
    chat_id: str
    chat_group_id: str
    config_id: str | None
    webhooks: list[dict[str, Any]]
    started_ms: int
    ended_ms: int
    status: str
    message: str
    custom_session_id: str | None = None
    caller: PhoneCaller | None = None


def session_end(session: ChatSession, *, status: str, ended_ms: int, message: str) -> ChatEnd:
    """The end of a live session."""
    return ChatEnd(
        account_id=session.account_id,
        chat_id=session.chat_id,
        chat_group_id=session.chat_group_id,
        config_id=session.config.get("id"),
        webhooks=session.config.get("webhooks", []),
        started_ms=session.started_ms,
        ended_ms=ended_ms,
        status=status,
        message=message,
        custom_session_id=session.custom_session_id,
        caller=caller_of(session),
    )


async def store_chat_end(s: AsyncSession, end: ChatEnd) -> int:
    """CHAT_END_MESSAGE, the final status and the `chat_ended` webhook; returns deliveries queued."""
    await chats.append_event(
        s, chat_id=end.chat_id, role="SYSTEM", type="CHAT_END_MESSAGE", message_text=end.message, timestamp=end.ended_ms
    )
    await chats.end_chat(s, chat_id=end.chat_id, status=end.status, end_timestamp=end.ended_ms)
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
            end_reason=end.status,
            caller_number=end.caller.caller_number if end.caller else None,
            twilio_metadata=end.caller.twilio_metadata if end.caller else None,
        ),
    )
