"""What the chat engine talks to, as small interfaces: its history, its outbound stream.

The engine (ChatSession, AssistantTurn) never writes SQL or frames wire messages itself; adapters do
(`stored_history.StoredHistory` for the database, the transports for sockets and phone calls). The
test tree has in-memory fakes of each, so turns, tools and barge-in run in-process in milliseconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from openevi.chat.telemetry import SentMessages
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from openevi.schemas.messages import ServerMessage


@dataclass(frozen=True)
class PhoneCaller:
    """Who is on the line, for the webhooks of a chat that is a phone call."""

    caller_number: str | None
    twilio_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatEnd:
    """What ending a chat stores: CHAT_END_MESSAGE, the final status and the `chat_ended` webhook."""

    account_id: str
    chat_id: str
    chat_group_id: str
    config_id: str | None
    webhooks: list[dict[str, Any]]
    started_ms: int
    ended_ms: int
    status: ChatStatus | str
    message: str
    custom_session_id: str | None = None
    caller: PhoneCaller | None = None
    recording_bytes: int = 0  # the size of its recording's files: charged to the account's storage


class PastEvent(Protocol):
    """A stored event of an earlier chat of the group, as resuming reads it."""

    @property
    def type(self) -> str: ...
    @property
    def message_text(self) -> str | None: ...
    @property
    def emotion_features(self) -> str | None: ...
    @property
    def event_metadata(self) -> str | None: ...


class ChatHistory(Protocol):
    """A chat's history: events are recorded in order, off the hot path; the end is stored once."""

    def start(self) -> None:
        """Begin accepting writes."""

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
        """Queue one event; returns its id (so later events can point at it)."""
        ...

    def record_errors(self, errors: list[dict[str, Any]]) -> None:
        """The chat's recent provider errors (kept in its metadata: the spec has no error event)."""

    def notify_tool_call(self, webhooks: list[dict[str, Any]], payload: dict[str, Any]) -> None:
        """A `tool_call` webhook for the config's subscribers, in order with the events."""

    def end(self, end: ChatEnd) -> None:
        """Store the end of the chat (after every event recorded before)."""

    async def earlier_events(self) -> list[PastEvent]:
        """The group's events from its earlier chats, oldest first (for a resumed chat)."""
        ...

    async def wait_for_room(self) -> None:
        """Return once the queue of writes is short enough to accept a client's next message."""

    async def synced(self) -> None:
        """Return once every event recorded so far is stored (sockets send what they show after it)."""

    async def close(self) -> None:
        """Finish every queued write."""


class Playback(Protocol):
    """The listener's playback of the audio sent so far: paces `audio_output`, tells what was heard."""

    def wait_before_next(self) -> float:
        """Seconds to wait before sending more audio (the client should not be sent too far ahead)."""
        ...

    def play(self, seconds: float, key: str | None = None) -> int:
        """`seconds` of audio (of message `key`) were sent; returns their position on the chat's
        timeline (ms)."""
        ...

    @property
    def sent_s(self) -> float:
        """Seconds of audio sent so far, less what a clear dropped unheard."""
        ...

    def played_s(self) -> float:
        """Seconds of the audio sent that the listener has heard (at most `sent_s`)."""
        ...

    def confirm_by_transport(self) -> None:
        """From now on the transport confirms each message's audio when it has been played."""

    def confirm(self, key: str) -> None:
        """The audio of message `key` has been played to its end (a transport's echo)."""

    def clear(self) -> None:
        """The listener dropped what it had not played yet (barge-in, pause, a new turn)."""

    @property
    def playing(self) -> bool:
        """Audio already sent is still being heard."""
        ...


class Fanout:
    """The outbound stream of one chat: every message goes, in order, to every subscribed socket.

    `None` on a queue means "the chat is over: close the socket".
    """

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[ServerMessage | None]] = []
        self._telemetry = SentMessages()

    def subscribe(self) -> asyncio.Queue[ServerMessage | None]:
        queue: asyncio.Queue[ServerMessage | None] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ServerMessage | None]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def send(self, message: ServerMessage) -> None:
        self._telemetry.sent(message)
        for queue in self._queues:
            queue.put_nowait(message)

    def close(self) -> None:
        self._telemetry.close()
        for queue in self._queues:
            queue.put_nowait(None)
