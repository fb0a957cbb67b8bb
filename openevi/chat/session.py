"""ChatSession: one live chat's lifecycle and wiring.

Sockets (the chat socket and control-plane observers) subscribe to the chat's outbound stream; every
message any of them sends goes through `handle` (or `handle_audio`), one at a time. Who holds the
floor — the user, a speculative answer, the assistant — is the `Floor`'s job (chat/floor.py); the
clocks are `Timeouts`' (chat/timeouts.py); each answer is an `AssistantTurn` on a `TurnContext`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from enum import Enum
from typing import Any

from pydantic import ValidationError

from openevi.audio.recorder import ChatRecorder
from openevi.chat.config import ChatConfig
from openevi.chat.context import CONTEXT_EVENT_TYPES, DEFAULT_SYSTEM_PROMPT, Conversation, rebuild_history
from openevi.chat.ear import Ear
from openevi.chat.floor import Floor
from openevi.chat.limits import QUIET, ChatLimits
from openevi.chat.output import ChatOutput
from openevi.chat.playback import PlaybackClock
from openevi.chat.ports import ChatEnd, ChatHistory, PhoneCaller, Playback
from openevi.chat.runtime import ChatRuntime
from openevi.chat.tasks import TaskScope
from openevi.chat.timeouts import Timeouts
from openevi.chat.tools import ToolSet
from openevi.chat.turn_setup import TurnSetup
from openevi.chat.turns import ChatIdentity
from openevi.llm.registry import is_custom_language_model
from openevi.schemas import messages as msg
from openevi.schemas import protocol as p
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from openevi.store.db import now_ms

log = logging.getLogger("openevi.chat.session")


class Phase(Enum):
    """Where a chat is. Who speaks (the floor) is orthogonal; an ended chat carries its status."""

    NEW = "new"  # built, not started
    STARTING = "starting"  # metadata sent; resumed history and connect-time settings being applied
    OPEN = "open"  # listening and answering
    PAUSED = "paused"  # listening, not answering (pause_assistant_message)
    ENDED = "ended"


_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.NEW: frozenset({Phase.STARTING, Phase.ENDED}),
    Phase.STARTING: frozenset({Phase.OPEN, Phase.ENDED}),
    Phase.OPEN: frozenset({Phase.PAUSED, Phase.ENDED}),
    Phase.PAUSED: frozenset({Phase.OPEN, Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class ChatSession:
    """One chat: its phase (see `Phase`), inbound messages, and the parts wired together."""

    def __init__(
        self,
        runtime: ChatRuntime,
        *,
        account_id: str,
        config: ChatConfig,
        history: ChatHistory,
        chat_id: str,
        chat_group_id: str,
        started_ms: int,
        allow_connection: bool,
        verbose_transcription: bool,
        phone_caller: PhoneCaller | None = None,
    ) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.config = config
        self.history = history
        self.phone_caller = phone_caller
        self.chat_id = chat_id
        self.chat_group_id = chat_group_id
        self.allow_connection = allow_connection
        self.verbose_transcription = verbose_transcription
        self.request_id = uuid.uuid4().hex
        self.limits = ChatLimits(runtime.settings, runtime.clock.monotonic)
        self.output = ChatOutput(history=history, limits=self.limits, request_id=self.request_id, started_ms=started_ms)
        self.metadata: dict[str, Any] | None = None
        custom_model = is_custom_language_model(config.language_model, runtime.settings)
        # A custom language model writes its own words: no openevi prompt of ours, and (unless the
        # operator opts in) only confirmed turns, never a speculative request it would bill or log.
        self.conversation = Conversation(
            base_prompt=config.prompt_text, default_prompt=None if custom_model else DEFAULT_SYSTEM_PROMPT
        )
        self.speculate = not custom_model or runtime.settings.clm_speculation
        self.tools = ToolSet.for_config(config, web_search_available=bool(runtime.settings.web_search_url))
        self.phase = Phase.NEW
        self._end_status: ChatStatus | None = None
        self.inbound = asyncio.Lock()
        self.clock = runtime.clock
        # Every task of the chat (turn, timers, scoring, listening) belongs here; close() ends them all.
        self.tasks = TaskScope(f"chat {chat_id}")
        self.playback: Playback = PlaybackClock(lead_s=runtime.settings.audio_lead_ms / 1000, clock=self.clock)
        self.recorder: ChatRecorder | None = None
        self.closed = asyncio.Event()
        self._ending: asyncio.Task[None] | None = None
        # How the chat's sockets are closed when it ends (revocation closes with a policy code).
        self.close_code = 1000
        self.close_reason = ""
        self.turns = TurnSetup(
            runtime=runtime,
            config=config,
            chat=ChatIdentity(chat_id, chat_group_id, config.id, tuple(config.webhooks), phone_caller),
            conversation=self.conversation,
            tools=self.tools,
            output=self.output,
            playback=self.playback,
            tasks=self.tasks,
        )
        self.floor = Floor(
            turn_context=self.turns.context,
            conversation=self.conversation,
            output=self.output,
            playback=self.playback,
            clock=self.clock,
            tasks=self.tasks,
            inbound=self.inbound,
            backchannel_tolerance=runtime.settings.backchannel_tolerance,
            on_hang_up=lambda: self.close(ChatStatus.USER_ENDED, reason="hang_up"),
            user_audio=lambda samples, at_ms: self.recorder.user_audio(samples, at_ms=at_ms) if self.recorder else None,
        )
        self.ear = Ear(
            runtime=runtime,
            config=config,
            floor=self.floor,
            output=self.output,
            tasks=self.tasks,
            verbose=verbose_transcription,
            speculate=self.speculate,
        )

    # --- state ------------------------------------------------------------------------------

    @property
    def status(self) -> ChatStatus | None:
        """How the chat ended (None while it has not)."""
        return self._end_status if self.phase is Phase.ENDED else None

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    @property
    def paused(self) -> bool:
        return self.phase is Phase.PAUSED

    @property
    def speaking(self) -> bool:
        return self.floor.speaking

    def _enter(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"chat {self.chat_id}: no transition {self.phase.value} → {phase.value}")
        self.phase = phase

    def subscribe(self) -> asyncio.Queue[msg.ServerMessage | None]:
        """A socket's view of the chat's outbound stream (None: the chat is over)."""
        return self.output.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[msg.ServerMessage | None]) -> None:
        self.output.stream.unsubscribe(queue)

    def emit(self, message: msg.ServerMessage) -> None:
        self.output.emit(message)

    def emit_error(self, code: tuple[str, str], message: str) -> None:
        self.output.emit_error(code, message)

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, *, resumed: bool, session_settings: dict[str, Any] | None) -> None:
        """Begin: metadata first, then the system prompt event, timers and the greeting."""
        if self.ended:
            return  # closed before it began (its key was revoked while the socket was accepted)
        self._enter(Phase.STARTING)
        self.history.start()
        self.recorder = self.turns.recorder = ChatRecorder(
            self.runtime.settings.data_dir / "recordings" / self.chat_id,
            assistant_rate=self.runtime.tts.sample_rate,
            on_finished=self.runtime.on_recording_finished,
            max_seconds=self.runtime.settings.max_chat_duration_s + 60,  # issue 19: bounded tracks
        )
        self.runtime.sessions[self.chat_id] = self
        # Messages from the sockets wait until the chat is set up: a user_input sent right after
        # chat_metadata must see the resumed history and the connect-time settings. The lock is taken
        # before the first await (a Redis bus registers over the network), or the socket's reader,
        # already running, could get in first: an answer before chat_metadata.
        async with self.inbound:
            await self.runtime.bus.register(self.chat_id, self.handle_control)
            if self.ended:
                # Ended while registering (key revoked, shutdown): close() found nothing to unregister.
                await self.runtime.bus.unregister(self.chat_id)
                return
            self.emit(
                msg.ChatMetadata(chat_id=self.chat_id, chat_group_id=self.chat_group_id, request_id=self.request_id)
            )
            settings = (
                p.SessionSettings.model_validate({**session_settings, "type": "session_settings"})
                if session_settings
                else None
            )
            if resumed:
                earlier = [e for e in await self.history.earlier_events() if e.type in CONTEXT_EVENT_TYPES]
                if settings is not None and settings.event_limit is not None:
                    # event_limit: only the group's most recent messages rebuild the context.
                    earlier = earlier[len(earlier) - settings.event_limit :] if settings.event_limit else []
                self.conversation.history = rebuild_history(earlier)
            if settings is not None and (refusal := self.limits.check(settings, self.conversation)) is not None:
                self.emit_error(*refusal)
            elif settings is not None:
                self._apply_settings(settings)
            self.output.record(EventRole.SYSTEM, EventType.SYSTEM_PROMPT, self.conversation.system_prompt)
            timeouts = Timeouts(
                config=self.config,
                max_chat_duration_s=self.runtime.settings.max_chat_duration_s,
                clock=self.clock,
                floor=self.floor,
                paused=lambda: self.paused,
                close=lambda status, reason: self.close(status, reason=reason),
            )
            self.tasks.spawn(timeouts.run(), name=f"timeouts-{self.chat_id}")
            if self.phase is not Phase.STARTING:
                return  # ended while starting
            self._enter(Phase.OPEN)
            greeting = self.config.on_new_chat
            if greeting.enabled and not resumed:
                await self.floor.reply(
                    speak=greeting.text,
                    instruction="Greet the user warmly in one short sentence to open the conversation.",
                )

    async def close(self, status: ChatStatus, *, reason: str = "") -> None:
        """End the chat: stop the turn and timers, store the end, tell the sockets.

        A second caller (the socket's end racing a hang-up or a timeout, shutdown) returns once the
        first has finished: shutdown must not release the store under a chat still writing its end."""
        if self.ended:
            # A task of the chat waiting here is cancelled by the first closer's TaskScope.aclose().
            await self.closed.wait()
            return
        if self.phase is Phase.NEW:
            self.history.start()  # never started: its end must still be written
        self._enter(Phase.ENDED)
        self._end_status = status
        self.floor.closed = True
        # The end runs as a task of its own, so a closer that is itself cancelled (a socket handler
        # at shutdown, a task of this chat) cannot leave the chat half-ended: ACTIVE in the store,
        # sockets open. The closer waits for it unless it is cancelled.
        self._ending = asyncio.create_task(self._end_once(status, reason), name=f"close-{self.chat_id}")
        await asyncio.shield(self._ending)

    async def _end_once(self, status: ChatStatus, reason: str) -> None:
        try:
            await self._end(status, reason)
        except Exception:
            log.exception("chat %s: ending failed", self.chat_id)
            raise
        finally:
            self.closed.set()  # even if ending failed half-way: no second caller waits forever

    async def _end(self, status: ChatStatus, reason: str) -> None:
        await self.floor.close()
        for future in self.turns.pending_tools.values():
            future.cancel()
        # Every other task of the chat is cancelled and awaited (the caller may be one of them).
        await self.tasks.aclose()
        await self.runtime.bus.unregister(self.chat_id)
        self.runtime.sessions.pop(self.chat_id, None)
        # The listener and the recording close first: the end charges the recording's files to the
        # account's storage quota (issue 19), in the same transaction.
        await self.ear.aclose()
        recording = 0
        if self.recorder is not None:
            self.recorder.close()
            recording = self.recorder.stored_bytes
            self.limits.charge_recording(recording)
        self.history.end(
            ChatEnd(
                account_id=self.account_id,
                chat_id=self.chat_id,
                chat_group_id=self.chat_group_id,
                config_id=self.config.id,
                webhooks=list(self.config.webhooks),
                started_ms=self.output.started_ms,
                ended_ms=now_ms(),
                status=status,
                message=reason or status,
                custom_session_id=self.output.custom_session_id,
                caller=self.phone_caller,
                recording_bytes=recording,
            )
        )
        await self.history.close()
        await self.turns.aclose()
        self.output.stream.close()

    # --- inbound ----------------------------------------------------------------------------

    async def handle_control(self, message: dict[str, Any]) -> None:
        """A message from the control plane (`POST /chat/{id}/send`)."""
        await self.handle(message)

    async def handle_audio(self, raw: bytes, *, custom_session_id: str | None = None) -> None:
        """The user's audio: raw PCM (per `session_settings.audio`) or a container chunk, as a binary
        frame, an unwrapped `audio_input` or a phone bridge delivers it."""
        if len(raw) > self.runtime.settings.chat_max_message_bytes:
            self.emit_error(msg.E_MESSAGE_TOO_LARGE, "Message too large")
            return
        if self.ended:
            return
        async with self.inbound:
            if self.ended:
                return  # the chat ended while this waited its turn: no ear built for it
            if custom_session_id is not None:
                if (refusal := self.limits.check_custom_session_id(custom_session_id)) is not None:
                    self.emit_error(*refusal)
                    return
                self.output.custom_session_id = custom_session_id
            try:
                await self.ear.hear(raw)
            except Exception:
                log.exception("chat %s: error handling binary audio", self.chat_id)
                self.emit_error(msg.E_INTERNAL, "Internal error while handling audio")

    async def handle(self, data: dict[str, Any]) -> None:
        """A control message (text, settings, tools, pause/resume) from a socket or the control plane."""
        try:
            message = p.control_message_adapter.validate_python(data)
        except ValidationError as exc:
            kind = data.get("type")
            first = exc.errors()[0] if exc.errors() else {"msg": "invalid"}
            where = ".".join(str(x) for x in first.get("loc", ()) if x != kind)
            self.emit_error(msg.E_INVALID_MESSAGE, f"Invalid {kind or 'message'}: {where} {first['msg']}".strip())
            return
        if self.ended:
            return
        async with self.inbound:
            # issue 19: while the history is backlogged, the next message waits (the socket stops
            # being read), so a client cannot queue writes faster than they are stored.
            await self.history.wait_for_room()
            if self.ended:
                return  # the chat ended while this waited its turn
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("chat %s: error handling %s", self.chat_id, data.get("type"))
                self.emit_error(msg.E_INTERNAL, "Internal error while handling the message")

    async def _dispatch(self, message: p.ControlMessage) -> None:
        if (refusal := self.limits.check(message, self.conversation)) is not None:
            if refusal is not QUIET:  # issue 19: a flood past the rate limit is told once a second
                self.emit_error(*refusal)
            return
        if message.custom_session_id is not None:
            self.output.custom_session_id = message.custom_session_id
        self.floor.touch()
        match message:
            case p.UserInput(text=text):
                await self.floor.user_typed(text)
            case p.AssistantInput(text=text):
                await self.floor.reply(speak=text)
            case p.SessionSettings():
                self._apply_settings(message)
            case p.ToolResponse() | p.ToolError():
                future = self.turns.pending_tools.get(message.tool_call_id)
                if future is None or future.done():
                    self.emit_error(msg.E_TOOL, f"No pending tool call with id {message.tool_call_id!r}")
                else:
                    future.set_result(message)
                self.emit(msg.echo_tool_result(message))  # into the stream, as the SDK expects
            case p.PauseAssistant() if self.phase is Phase.OPEN:
                await self.floor.pause()
                self._enter(Phase.PAUSED)
                self.output.record(EventRole.USER, EventType.PAUSE_ONSET)
            case p.ResumeAssistant() if self.phase is Phase.PAUSED:
                self._enter(Phase.OPEN)
                self.output.record(EventRole.USER, EventType.RESUME_ONSET)
                await self.floor.resume()

    def _apply_settings(self, s: p.SessionSettings) -> None:
        fields = s.model_fields_set
        self.conversation.apply_settings(s)
        if "tools" in fields or "builtin_tools" in fields:
            self.tools.apply_settings(s)
        if "language_model_api_key" in fields:
            self.turns.use_api_key(s.language_model_api_key)
        if "voice_id" in fields and s.voice_id:
            self.turns.use_voice(s.voice_id)
        if "audio" in fields:
            self.ear.configure(s.audio)
        if "metadata" in fields:
            self.metadata = s.metadata
        if s.custom_session_id is not None:
            self.output.custom_session_id = s.custom_session_id
        shown = s.model_dump(mode="json", exclude_unset=True, exclude={"language_model_api_key"})
        self.output.record(EventRole.USER, EventType.SESSION_SETTINGS, json.dumps(shown))
        if "system_prompt" in fields or "variables" in fields:
            self.output.record(EventRole.SYSTEM, EventType.SYSTEM_PROMPT, self.conversation.system_prompt)
        self.emit(msg.SessionSettingsApplied(settings=shown))
