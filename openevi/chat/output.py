"""What a chat says and keeps: typed messages to its sockets, events to its history.

One object, handed to the floor and to each assistant turn, instead of the whole session: it stamps
`custom_session_id` on every message, charges stored text to the chat's storage budget, and keeps
provider errors in the chat's metadata (the spec's event types have no error type).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from openevi.chat.limits import ChatLimits
from openevi.chat.ports import ChatHistory, Fanout
from openevi.schemas import messages as msg
from openevi.schemas.chat_types import EventRole, EventType
from openevi.store.db import now_ms


class ChatOutput:
    """The outbound stream and the history of one chat."""

    def __init__(self, *, history: ChatHistory, limits: ChatLimits, request_id: str, started_ms: int) -> None:
        self.stream = Fanout()
        self.history = history
        self.limits = limits
        self.request_id = request_id
        self.started_ms = started_ms
        self.custom_session_id: str | None = None
        self.errors: list[dict[str, Any]] = []

    def subscribe(self) -> asyncio.Queue[msg.ServerMessage | None]:
        """A socket's view of the chat's outbound stream (None: the chat is over)."""
        return self.stream.subscribe()

    def emit(self, message: msg.ServerMessage) -> None:
        """Send a message to every socket of this chat, in order."""
        if self.custom_session_id is not None:
            # EVI tags every message of the session with the client's custom_session_id.
            message = replace(message, custom_session_id=self.custom_session_id)
        self.stream.send(message)

    def emit_error(self, code: tuple[str, str], message: str) -> None:
        self.emit(msg.Error.of(code, message, request_id=self.request_id))

    def elapsed_ms(self) -> int:
        """Now, on the chat's timeline (ms since it started)."""
        return now_ms() - self.started_ms

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
        """Store an event (in order, off the hot path); returns its id."""
        self.limits.charge(text, emotion_features, metadata)
        return self.history.record(
            role,
            type_,
            text,
            emotion_features=emotion_features,
            metadata=metadata,
            related_event_id=related_event_id,
        )

    def record_error(self, code: tuple[str, str], message: str) -> None:
        """Errors go into the chat's metadata: the spec's event types have no error type."""
        self.errors.append({"code": code[0], "slug": code[1], "message": message, "timestamp": now_ms()})
        self.history.record_errors(self.errors[-20:])
