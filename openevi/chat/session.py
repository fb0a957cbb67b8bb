"""ChatSession: one live conversation — its state, inbound messages, turns, timers and history.

Sockets (the chat socket and control-plane observers) subscribe to the session's outbound stream;
every message any of them sends goes through `handle`, one at a time. Each assistant turn is a
task that interruption, pause or a new user turn cancels.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import replace
from enum import Enum
from typing import Any

import numpy as np
import soxr
from pydantic import ValidationError

from openevi.audio.recorder import ChatRecorder
from openevi.chat import messages as msg
from openevi.chat.config import ChatConfig
from openevi.chat.context import CONTEXT_EVENT_TYPES, Conversation, rebuild_history
from openevi.chat.limits import QUIET, ChatLimits
from openevi.chat.listener import HeardTurn, Listener, is_backchannel
from openevi.chat.playback import PlaybackClock
from openevi.chat.ports import ChatEnd, ChatHistory, Fanout, PhoneCaller, Playback
from openevi.chat.runtime import ChatRuntime
from openevi.chat.tasks import TaskScope
from openevi.chat.timings import TurnTimings
from openevi.chat.tools import ToolSet
from openevi.chat.turns import AssistantTurn, TurnOutcome
from openevi.llm.base import LanguageModel, Message
from openevi.schemas import protocol as p
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from openevi.speech.voices import Voice, resolve_voice
from openevi.store.db import now_ms

log = logging.getLogger("openevi.chat.session")


class Phase(Enum):
    """Where a chat is. `speaking` (a turn running or its audio still playing) is orthogonal."""

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
    """The state machine of one chat (see `Phase`)."""

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
        self.started_ms = started_ms
        self.allow_connection = allow_connection
        self.verbose_transcription = verbose_transcription
        self.request_id = uuid.uuid4().hex
        self.custom_session_id: str | None = None
        self.language_model_api_key: str | None = None
        self.audio_format: p.AudioConfiguration | None = None
        self.metadata: dict[str, Any] | None = None
        self.voice: Voice = self._config_voice()
        self.conversation = Conversation(base_prompt=config.prompt_text)
        self.tools = ToolSet(web_search_available=bool(runtime.settings.web_search_url))
        for tool in config.tools:
            self.tools.add_function(
                name=tool.name,
                parameters=tool.parameters,
                description=tool.description,
                fallback_content=tool.fallback_content,
            )
        for builtin in config.builtin_tools:
            self.tools.add_builtin(builtin.name, builtin.fallback_content)
        self.phase = Phase.NEW
        self.unanswered_while_paused = False
        self.status: ChatStatus | None = None  # set once the chat has ended
        self.errors: list[dict[str, Any]] = []
        self.outbound = Fanout()
        self._inbound = asyncio.Lock()
        self._turn: asyncio.Task[TurnOutcome] | None = None
        self._turn_obj: AssistantTurn | None = None
        self.clock = runtime.clock
        # Every task of the chat (turn, timers, scoring, listening) belongs here; close() ends them all.
        self.tasks = TaskScope(f"chat {chat_id}")
        self._last_activity = self.clock.monotonic()
        self._nudged = False
        self._nudging = False
        self._llm: LanguageModel | None = None
        self.pending_tools: dict[str, asyncio.Future[p.ToolResponse | p.ToolError]] = {}
        self.playback: Playback = PlaybackClock(lead_s=runtime.settings.audio_lead_ms / 1000, clock=self.clock)
        self.recorder: ChatRecorder | None = None
        self.listener: Listener | None = None
        self.timings = TurnTimings()
        self._held: tuple[asyncio.Event, HeardTurn] | None = None
        self.closed = asyncio.Event()
        self._ending: asyncio.Task[None] | None = None
        self.limits = ChatLimits(runtime.settings, runtime.clock.monotonic)
        # How the chat's sockets are closed when it ends (revocation closes with a policy code).
        self.close_code = 1000
        self.close_reason = ""

    # --- outbound -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.phase is Phase.PAUSED

    def _enter(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"chat {self.chat_id}: no transition {self.phase.value} → {phase.value}")
        self.phase = phase

    def subscribe(self) -> asyncio.Queue[msg.ServerMessage | None]:
        """A socket's view of the chat's outbound stream (None: the chat is over)."""
        return self.outbound.subscribe()

    def unsubscribe(self, queue: asyncio.Queue[msg.ServerMessage | None]) -> None:
        self.outbound.unsubscribe(queue)

    def emit(self, message: msg.ServerMessage) -> None:
        """Send a message to every socket of this chat, in order."""
        if self.custom_session_id is not None:
            # EVI tags every message of the session with the client's custom_session_id.
            message = replace(message, custom_session_id=self.custom_session_id)
        self.outbound.send(message)

    def emit_error(self, code: tuple[str, str], message: str) -> None:
        self.emit(msg.Error.of(code, message, request_id=self.request_id))

    def elapsed_ms(self) -> int:
        return now_ms() - self.started_ms

    # --- history ----------------------------------------------------------------------------

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

    def measure_assistant(
        self, message_id: str, event_id: str, pcm: bytes, rate: int, text: str
    ) -> asyncio.Task[None] | None:
        """Score the emotion of the assistant's own speech (assistant_prosody), in the background."""
        prosody = self.runtime.prosody
        if prosody is None:
            return None

        async def run() -> None:
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            if rate != prosody.sample_rate:
                audio = soxr.resample(audio, rate, prosody.sample_rate).astype(np.float32)
            try:
                scores = await prosody.score(audio, text=text)
            except Exception:
                log.exception("chat %s: assistant prosody failed", self.chat_id)
                return
            if self.status is not None:
                return
            self.emit(msg.AssistantProsody(id=message_id, scores=scores))
            self.record(
                EventRole.AGENT,
                EventType.ASSISTANT_PROSODY,
                None,
                emotion_features=json.dumps(msg.wire_scores(scores)),
                related_event_id=event_id,
            )

        return self.tasks.spawn(run(), name=f"assistant-prosody-{self.chat_id}")

    # --- language model -------------------------------------------------------------------

    def language_model(self) -> LanguageModel:
        if self._llm is None:
            self._llm = self.runtime.language_model(self.config.language_model, self.language_model_api_key)
        return self._llm

    @property
    def temperature(self) -> float | None:
        return self.config.temperature

    def _config_voice(self) -> Voice:
        configured = self.config.voice or {}
        # Never fails: Hume Voice Library and custom voices are spoken by a mapped local voice.
        return resolve_voice(
            voice_id=configured.get("id"), name=configured.get("name"), provider=configured.get("provider")
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self, *, resumed: bool, session_settings: dict[str, Any] | None) -> None:
        """Begin: metadata first, then the system prompt event, timers and the greeting."""
        if self.status is not None:
            return  # closed before it began (its key was revoked while the socket was accepted)
        self._enter(Phase.STARTING)
        self.history.start()
        self.recorder = ChatRecorder(
            self.runtime.settings.data_dir / "recordings" / self.chat_id,
            assistant_rate=self.runtime.tts.sample_rate,
            on_finished=self.runtime.on_recording_finished,
            max_seconds=self.runtime.settings.max_chat_duration_s + 60,  # hostile (issue 19): bounded tracks
        )
        self.runtime.sessions[self.chat_id] = self
        # Messages from the sockets wait until the chat is set up: a user_input sent right after
        # chat_metadata must see the resumed history and the connect-time settings. The lock is taken
        # before the first await (a Redis bus registers over the network), or the socket's reader,
        # already running, could get in first: an answer before chat_metadata.
        async with self._inbound:
            await self.runtime.bus.register(self.chat_id, self.handle_control)
            if self.status is not None:
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
                await self._apply_settings(settings)
            self.record(EventRole.SYSTEM, EventType.SYSTEM_PROMPT, self.conversation.system_prompt)
            self.tasks.spawn(self._watch_timeouts(), name=f"timeouts-{self.chat_id}")
            if self.phase is not Phase.STARTING:
                return  # ended while starting
            self._enter(Phase.OPEN)
            greeting = self.config.on_new_chat
            if greeting.enabled and not resumed:
                await self._start_turn(
                    speak=greeting.text,
                    instruction="Greet the user warmly in one short sentence to open the conversation.",
                )

    async def close(self, status: ChatStatus, *, reason: str = "") -> None:
        """End the chat: stop the turn and timers, store the end, tell the sockets.

        A second caller (the socket's end racing a hang-up or a timeout, shutdown) returns once the
        first has finished: shutdown must not release the store under a chat still writing its end."""
        if self.status is not None:
            # A task of the chat waiting here is cancelled by the first closer's TaskScope.aclose().
            await self.closed.wait()
            return
        self.status = status
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
        if self.phase is Phase.NEW:
            self.history.start()  # never started: its end must still be written
        self._enter(Phase.ENDED)
        await self._cancel_turn(record_interruption=False)
        for future in self.pending_tools.values():
            future.cancel()
        # Every other task of the chat is cancelled and awaited (the caller may be one of them).
        await self.tasks.aclose()
        await self.runtime.bus.unregister(self.chat_id)
        self.runtime.sessions.pop(self.chat_id, None)
        self.history.end(
            ChatEnd(
                account_id=self.account_id,
                chat_id=self.chat_id,
                chat_group_id=self.chat_group_id,
                config_id=self.config.id,
                webhooks=list(self.config.webhooks),
                started_ms=self.started_ms,
                ended_ms=now_ms(),
                status=status,
                message=reason or status,
                custom_session_id=self.custom_session_id,
                caller=self.phone_caller,
            )
        )
        if self.listener is not None:
            await self.listener.aclose()
        if self.recorder is not None:
            self.recorder.close()
        await self.history.close()
        if self._llm is not None:
            await self._llm.aclose()
        self.outbound.close()

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
        if self.status is not None:
            return
        async with self._inbound:
            if self.status is not None:
                return  # the chat ended while this waited its turn: no ear built for it
            if custom_session_id is not None:
                if (refusal := self.limits.check_custom_session_id(custom_session_id)) is not None:
                    self.emit_error(*refusal)
                    return
                self.custom_session_id = custom_session_id
            try:
                await self._accept_pcm_or_container(raw)
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
        if self.status is not None:
            return
        async with self._inbound:
            # hostile (issue 19): while the history is backlogged, the next message waits (the
            # socket stops being read), so a client cannot queue writes faster than they are stored.
            await self.history.wait_for_room()
            if self.status is not None:
                return  # the chat ended while this waited its turn
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("chat %s: error handling %s", self.chat_id, data.get("type"))
                self.emit_error(msg.E_INTERNAL, "Internal error while handling the message")

    async def _dispatch(self, message: p.ControlMessage) -> None:
        if (refusal := self.limits.check(message, self.conversation)) is not None:
            if refusal is not QUIET:  # hostile (issue 19): a flood past the rate limit is told once a second
                self.emit_error(*refusal)
            return
        if message.custom_session_id is not None:
            self.custom_session_id = message.custom_session_id
        self._touch()
        match message:
            case p.UserInput(text=text):
                await self.user_turn(text, from_text=True)
            case p.AssistantInput(text=text):
                await self._start_turn(speak=text)
            case p.SessionSettings():
                await self._apply_settings(message)
            case p.ToolResponse() | p.ToolError():
                self._resolve_tool(message)
                self.emit(_echo(message))  # into the stream, as the SDK expects
            case p.PauseAssistant():
                await self._pause()
            case p.ResumeAssistant():
                await self._resume()

    def _touch(self) -> None:
        self._last_activity = self.clock.monotonic()
        self._nudged = False

    async def user_turn(
        self,
        text: str,
        *,
        from_text: bool,
        begin_ms: int | None = None,
        end_ms: int | None = None,
        emotions: dict[str, float] | None = None,
        language: str | None = None,
    ) -> None:
        """A finished user turn (typed, or transcribed speech): show it, store it, answer it."""
        if from_text:
            self.timings = TurnTimings()
            self.timings.mark("user_input")
        await self._cancel_turn(record_interruption=True)
        self._show_user_turn(
            text, from_text=from_text, begin_ms=begin_ms, end_ms=end_ms, emotions=emotions, language=language
        )
        if self.paused:
            self.unanswered_while_paused = True
            return
        await self._start_turn()

    def _show_user_turn(
        self,
        text: str,
        *,
        from_text: bool,
        begin_ms: int | None,
        end_ms: int | None,
        emotions: dict[str, float] | None,
        language: str | None,
        to_model: bool = True,
    ) -> None:
        """Send the final user_message, store it, and add it to the conversation (unless not `to_model`)."""
        now = self.elapsed_ms() if end_ms is None else end_ms
        self.emit(
            msg.UserMessage(
                text=text,
                begin_ms=begin_ms if begin_ms is not None else now,
                end_ms=now,
                from_text=from_text,
                prosody=emotions,
                language=language,
            )
        )
        features = json.dumps(msg.wire_scores(emotions)) if emotions is not None else None
        self.record(EventRole.USER, EventType.USER_MESSAGE, text, emotion_features=features)
        if to_model:
            self.conversation.add_user(text, emotions=emotions)

    async def _apply_settings(self, s: p.SessionSettings) -> None:
        fields = s.model_fields_set
        if "system_prompt" in fields:
            self.conversation.system_prompt_override = s.system_prompt
        if "variables" in fields and s.variables is not None:
            self.conversation.variables.update(s.variables)
        if "context" in fields:
            self.conversation.set_context(s.context.text if s.context else None, s.context.type if s.context else None)
        if "tools" in fields or "builtin_tools" in fields:
            self.tools.replace_session_tools(
                [t.model_dump() for t in s.tools or []]
                if "tools" in fields
                else [
                    {
                        "name": f.name,
                        "parameters": f.parameters,
                        "description": f.description,
                        "fallback_content": f.fallback_content,
                    }
                    for f in self.tools.functions.values()
                ],
                [b.model_dump() for b in s.builtin_tools or []] if "builtin_tools" in fields else None,
            )
        if "language_model_api_key" in fields:
            self.language_model_api_key = s.language_model_api_key
            self._llm = None  # the next turn uses the new key
        if "voice_id" in fields and s.voice_id:
            # Any id a Hume app could send (Voice Library, custom voice) is accepted; a name works too.
            self.voice = resolve_voice(voice_id=s.voice_id, name=s.voice_id)
        if "audio" in fields:
            self.audio_format = s.audio
            if self.listener is not None and s.audio is not None:
                self.listener.configure_pcm(s.audio.sample_rate, s.audio.channels)
        if "metadata" in fields:
            self.metadata = s.metadata
        if s.custom_session_id is not None:
            self.custom_session_id = s.custom_session_id
        shown = s.model_dump(mode="json", exclude_unset=True, exclude={"language_model_api_key"})
        self.record(EventRole.USER, EventType.SESSION_SETTINGS, json.dumps(shown))
        if "system_prompt" in fields or "variables" in fields:
            self.record(EventRole.SYSTEM, EventType.SYSTEM_PROMPT, self.conversation.system_prompt)
        self.emit(msg.SessionSettingsApplied(settings=shown))

    def _resolve_tool(self, answer: p.ToolResponse | p.ToolError) -> None:
        future = self.pending_tools.get(answer.tool_call_id)
        if future is None or future.done():
            self.emit_error(msg.E_TOOL, f"No pending tool call with id {answer.tool_call_id!r}")
            return
        future.set_result(answer)

    async def _pause(self) -> None:
        if self.phase is not Phase.OPEN:
            return
        await self._cancel_turn(record_interruption=False)
        self._enter(Phase.PAUSED)
        self.record(EventRole.USER, EventType.PAUSE_ONSET)

    async def _resume(self) -> None:
        if self.phase is not Phase.PAUSED:
            return
        self._enter(Phase.OPEN)
        self.record(EventRole.USER, EventType.RESUME_ONSET)
        if self.unanswered_while_paused:
            self.unanswered_while_paused = False
            await self._start_turn()

    async def _accept_pcm_or_container(self, raw: bytes) -> None:
        listener = self.listener or self._start_listening()
        if listener is not None:
            await listener.push(raw)

    def _start_listening(self) -> Listener | None:
        """The first audio_input: build this chat's ear (the models are shared and already loaded)."""
        rt = self.runtime
        if rt.vad is None or rt.asr is None:
            self.emit_error(msg.E_INVALID_AUDIO, "Voice input is not available on this server (see its log)")
            return None
        offset_ms = self.elapsed_ms()
        self.listener = Listener(
            vad=rt.vad,
            asr=rt.asr,
            prosody=rt.prosody,
            turn_detection=self.config.turn_detection,
            min_interruption_ms=self.config.min_interruption_ms,
            verbose=self.verbose_transcription,
            on_turn=lambda heard: self._heard(heard, offset_ms),
            on_speech=self._user_speaking,
            on_interim=lambda text, begin, end: self.emit(
                msg.UserMessage(
                    text=text, begin_ms=offset_ms + begin, end_ms=offset_ms + end, from_text=False, interim=True
                )
            ),
            on_error=lambda message: self.emit_error(msg.E_INVALID_AUDIO, message),
            on_mark=self._mark,
            on_early=lambda heard: self._heard_early(heard, offset_ms),
            on_resumed=self._user_resumed,
            tasks=self.tasks,
            on_audio=lambda samples, at_ms: (
                self.recorder.user_audio(samples, at_ms=offset_ms + at_ms) if self.recorder is not None else None
            ),
        )
        if self.audio_format is not None:
            self.listener.configure_pcm(self.audio_format.sample_rate, self.audio_format.channels)
        return self.listener

    def _mark(self, stage: str) -> None:
        if stage == "speech_start":
            self.timings = TurnTimings()
        elif stage == "speech_resumed":
            self.timings.forget("speech_end")
            return
        self.timings.mark(stage)

    async def _user_speaking(self, speech_ms: int) -> None:
        """The user has spoken for at least min_interruption_ms in this turn: barge in if we talk."""
        self._touch()
        if self.speaking:
            await self._cancel_turn(record_interruption=True)

    async def _heard_early(self, heard: HeardTurn, offset_ms: int) -> None:
        """Words ready inside the end-of-turn silence: start answering now, silently, until confirmed."""
        async with self._inbound:
            if self.status is not None or self.paused or self.speaking:
                return
            hold = asyncio.Event()
            pending = self.conversation.user_message(heard.text, emotions=heard.emotions)
            await self._start_turn(pending_user=pending, hold=hold)
            self._held = (hold, heard)

    async def _user_resumed(self) -> None:
        """The user spoke again inside the silence window: a speculative answer is dropped."""
        if self._held is not None:
            self._held = None
            await self._cancel_turn(record_interruption=False)

    async def _heard(self, heard: HeardTurn, offset_ms: int) -> None:
        async with self._inbound:
            if self.status is not None:
                return
            self._touch()
            if (
                self.runtime.settings.backchannel_tolerance
                and self.speaking
                and not heard.interrupting
                and is_backchannel(heard.text)
            ):
                # "mm-hmm" while the assistant talks: shown and stored, but it keeps the floor.
                self._show_user_turn(
                    heard.text,
                    from_text=False,
                    begin_ms=offset_ms + heard.begin_ms,
                    end_ms=offset_ms + heard.end_ms,
                    emotions=heard.emotions,
                    language=heard.language,
                    to_model=False,
                )
                return
            held, self._held = self._held, None
            if held is not None and held[1].text == heard.text and self._turn is not None:
                self._show_user_turn(
                    heard.text,
                    from_text=False,
                    begin_ms=offset_ms + heard.begin_ms,
                    end_ms=offset_ms + heard.end_ms,
                    emotions=heard.emotions,
                    language=heard.language,
                )
                held[0].set()  # the speculative answer is the answer
                return
            if held is not None:
                await self._cancel_turn(record_interruption=False)
            await self.user_turn(
                heard.text,
                from_text=False,
                begin_ms=offset_ms + heard.begin_ms,
                emotions=heard.emotions,
                end_ms=offset_ms + heard.end_ms,
                language=heard.language,
            )

    # --- turns ------------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """The assistant is generating, or the listener is still hearing audio already sent."""
        return (self._turn is not None and not self._turn.done()) or self.playback.playing

    async def _start_turn(
        self,
        *,
        speak: str | None = None,
        instruction: str | None = None,
        pending_user: Message | None = None,
        hold: asyncio.Event | None = None,
        nudge: bool = False,
    ) -> None:
        """Start an assistant turn: speak `speak` verbatim, or generate (guided by `instruction`).

        A turn still running is replaced without a `user_interruption` (callers for whom the user
        did interrupt, such as `user_turn`, cancel it first themselves)."""
        await self._cancel_turn(record_interruption=False)
        if self.status is not None:
            return
        self._nudging = nudge
        turn = AssistantTurn(self, speak=speak, instruction=instruction, pending_user=pending_user, hold=hold)
        self._turn_obj = turn
        # A failure is reported by _turn_done (error + assistant_end), not only logged.
        self._turn = self.tasks.spawn(turn.run(), name=f"turn-{self.chat_id}", log_failure=False)
        self._turn.add_done_callback(self._turn_done)

    def _turn_done(self, task: asyncio.Task[TurnOutcome]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # The client must never wait forever on a turn that died: tell it, and close the turn.
            log.error("chat %s: assistant turn failed", self.chat_id, exc_info=exc)
            if self.status is None:
                self.emit_error(msg.E_INTERNAL, "Internal error while answering")
                self.emit(msg.AssistantEnd())
            return
        outcome = task.result()
        if not self._nudging:
            # Silence is counted from the end of a real answer; a nudge does not restart the clock,
            # so an unanswered nudge is followed by the inactivity timeout, not by more nudges.
            self._last_activity = self.clock.monotonic()
        if outcome.hang_up:
            self.tasks.spawn(self.close(ChatStatus.USER_ENDED, reason="hang_up"), name=f"hangup-{self.chat_id}")

    async def _cancel_turn(self, *, record_interruption: bool) -> None:
        """Stop the current turn at once (what was already sent stays recorded as said)."""
        task, turn = self._turn, self._turn_obj
        self._turn = self._turn_obj = None
        self._held = None  # a speculative answer dies with its turn
        # Audio already sent may still be playing on the client: stopping it is an interruption too.
        was_playing = self.playback.playing
        self.playback.clear()
        if task is None or task is asyncio.current_task():
            return
        if not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # The turn's cancellation ends here; ours (the chat closing this task) goes on.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        elif not was_playing:
            return
        if record_interruption and turn is not None and turn.started_speaking:
            self.emit(msg.UserInterruption(time_ms=self.elapsed_ms()))
            self.record(EventRole.USER, EventType.USER_INTERRUPTION)

    async def wait_turn(self) -> None:
        task = self._turn
        if task is not None and task is not asyncio.current_task():
            # Waits for the turn however it ends, without swallowing the waiter's own cancellation.
            await asyncio.wait({task})

    # --- timers -----------------------------------------------------------------------------

    async def _watch_timeouts(self) -> None:
        """Inactivity and maximum-duration timeouts, and nudges while the user is silent."""
        config = self.config
        limit = self.runtime.settings.max_chat_duration_s
        if config.max_duration.enabled:
            limit = min(limit, config.max_duration.duration_s)
        clock = self.clock
        started = clock.monotonic()
        while self.status is None:
            await clock.sleep(0.25)
            now = clock.monotonic()
            silent = now - self._last_activity
            if now - started >= limit:
                await self._end_with_message(ChatStatus.MAX_DURATION_TIMEOUT, "on_max_duration_timeout")
                return
            if self.speaking or self.paused:
                continue
            if config.inactivity.enabled and silent >= config.inactivity.duration_s:
                await self._end_with_message(ChatStatus.INACTIVITY_TIMEOUT, "on_inactivity_timeout")
                return
            interval = config.nudge_interval_s
            if interval is not None and not self._nudged and silent >= interval:
                self._nudged = True
                await self._start_turn(
                    nudge=True,
                    instruction="The user has been silent for a while. Gently check in with one short question.",
                )

    async def _end_with_message(self, status: ChatStatus, event_name: str) -> None:
        spec = self.config.event_message(event_name)
        if spec.enabled:
            await self._start_turn(
                speak=spec.text,
                instruction="The conversation is ending because of a time limit. Say a short, kind goodbye.",
            )
            await self.wait_turn()
        await self.close(status, reason=event_name)


def _echo(answer: p.ToolResponse | p.ToolError) -> msg.ToolResponse | msg.ToolError:
    """A client's tool result as the stream shows it."""
    if isinstance(answer, p.ToolResponse):
        return msg.ToolResponse(
            tool_call_id=answer.tool_call_id,
            content=answer.content,
            tool_name=answer.tool_name,
            tool_type=answer.tool_type,
        )
    return msg.ToolError(
        tool_call_id=answer.tool_call_id,
        error=answer.error,
        content=answer.content,
        code=answer.code,
        level=answer.level,
        tool_type=answer.tool_type,
    )
