"""Who holds the conversational floor: the user, a held (speculative) answer, or the assistant.

    IDLE ──speech──► USER_SPEAKING ──words early──► SPECULATING ──turn confirmed──► RESPONDING
      ▲                 ▲    │                         │  speech resumed                │ answer done,
      │                 │    └──turn (no speculation)──┼─────────────────────────────►  │ audio playing
      │                 └─────────────barge-in─────────┴──── PLAYING_OUT ◄────────────┘
      └──────────────────────── playback over / nothing heard ────┘

One transition table (`TRANSITIONS`) says which moves exist; `Floor` makes them. It owns the current
reply (one `AssistantTurn` task), the held speculation, barge-in, the backchannel rule and the order
of user turns: a turn is answered in the order the user finished it, so a typed message sent while
a spoken turn is still being transcribed is answered after that turn's answer, not before it.
The floor implements `ListenerEvents`: the listener tells it what the user does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from openevi.chat.clock import Clock
from openevi.chat.context import Conversation
from openevi.chat.listener import HeardTurn, is_backchannel
from openevi.chat.output import ChatOutput
from openevi.chat.ports import Playback
from openevi.chat.said import SaidLedger
from openevi.chat.tasks import TaskScope
from openevi.chat.timings import TurnTimings
from openevi.chat.turns import AssistantTurn, TurnContext, TurnOutcome
from openevi.llm.base import Message
from openevi.schemas import messages as msg
from openevi.schemas.chat_types import EventRole, EventType

log = logging.getLogger("openevi.chat.floor")

# While a queued typed turn waits for the answer before it to finish playing, it looks this often.
_PLAYOUT_POLL_S = 0.05


class FloorState(Enum):
    IDLE = "idle"  # nobody speaks
    USER_SPEAKING = "user_speaking"  # the user's turn is open (or closing: its words being transcribed)
    SPECULATING = "speculating"  # an answer to the words so far is prepared, silent until confirmed
    RESPONDING = "responding"  # the assistant's turn runs: generating, sending audio
    PLAYING_OUT = "playing_out"  # the turn is over; its audio still plays on the client


S = FloorState
TRANSITIONS: dict[FloorState, frozenset[FloorState]] = {
    S.IDLE: frozenset({S.USER_SPEAKING, S.RESPONDING}),  # speech starts / a greeting, nudge, typed turn
    S.USER_SPEAKING: frozenset({S.IDLE, S.SPECULATING, S.RESPONDING}),  # nothing heard / words early / turn
    S.SPECULATING: frozenset({S.IDLE, S.USER_SPEAKING, S.RESPONDING}),  # dropped / speech resumed / confirmed
    S.RESPONDING: frozenset({S.IDLE, S.USER_SPEAKING, S.PLAYING_OUT}),  # replaced / barge-in / generated
    S.PLAYING_OUT: frozenset({S.IDLE, S.USER_SPEAKING}),  # played or replaced / barge-in
}


@dataclass(frozen=True)
class _BargeIn:
    """Where playback stood when the user barged in (their words, if any, are still being heard)."""

    played_s: float
    sent_s: float


class Floor:
    """The turn-taking of one chat. Calls that change the floor run under the chat's inbound lock."""

    def __init__(
        self,
        *,
        turn_context: Callable[[SaidLedger, TurnTimings], TurnContext],
        conversation: Conversation,
        output: ChatOutput,
        playback: Playback,
        clock: Clock,
        tasks: TaskScope,
        inbound: asyncio.Lock,
        backchannel_tolerance: bool,
        on_hang_up: Callable[[], Coroutine[Any, Any, None]],
        user_audio: Callable[[np.ndarray, int], None] = lambda samples, at_ms: None,
    ) -> None:
        self._context = turn_context
        self._conversation = conversation
        self._out = output
        self._playback = playback
        self._clock = clock
        self._tasks = tasks
        self._inbound = inbound
        self._backchannel_tolerance = backchannel_tolerance
        self._on_hang_up = on_hang_up
        self._user_audio = user_audio
        self.said = SaidLedger(conversation=conversation, output=output, playback=playback)
        self._state = S.IDLE
        self._reply: asyncio.Task[TurnOutcome] | None = None
        self._reply_turn: AssistantTurn | None = None
        self._held: tuple[asyncio.Event, HeardTurn] | None = None
        self._barge_in: _BargeIn | None = None  # the answer is suspended until the user's words are known
        self._closing = 0  # spoken turns finished whose words are still being transcribed
        self._typed: list[str] = []  # typed turns waiting for an earlier-finished spoken turn's answer
        self._typed_task: asyncio.Task[None] | None = None
        self._nudging = False
        self.paused = False
        self.unanswered = False  # a user turn came while paused: answered on resume
        self.closed = False
        self.offset_ms = 0  # where the listener's audio starts on the chat's timeline
        self.timings = TurnTimings()
        self.last_activity = clock.monotonic()
        self.nudged = False

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> FloorState:
        if self._state is S.PLAYING_OUT and not self._playback.playing:
            self._state = S.IDLE  # the client has played everything it was sent
        return self._state

    def _go(self, state: FloorState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"floor: no transition {self._state.value} → {state.value}")
        self._state = state

    @property
    def speaking(self) -> bool:
        """The assistant is generating, or the listener is still hearing audio already sent."""
        return self.state in (S.RESPONDING, S.PLAYING_OUT)

    def touch(self) -> None:
        """The user did something: the silence (inactivity, nudges) starts again."""
        self.last_activity = self._clock.monotonic()
        self.nudged = False

    # --- replies ----------------------------------------------------------------------------

    async def reply(
        self,
        *,
        speak: str | None = None,
        instruction: str | None = None,
        pending_user: Message | None = None,
        hold: asyncio.Event | None = None,
        nudge: bool = False,
        from_text: bool | None = None,
    ) -> None:
        """Start an assistant turn: speak `speak` verbatim, or generate (guided by `instruction`).

        A turn still running is replaced without a `user_interruption` (callers for whom the user did
        interrupt cancel it first themselves). With `hold`, the answer is speculative: silent, and
        its tools wait, until `hold` is set."""
        await self.cancel(record_interruption=False)
        if self.closed:
            return
        self._nudging = nudge
        turn = AssistantTurn(
            self._context(self.said, self.timings),
            speak=speak,
            instruction=instruction,
            pending_user=pending_user,
            hold=hold,
            from_text=from_text,
        )
        self._reply_turn = turn
        self._go(S.SPECULATING if hold is not None else S.RESPONDING)
        # A failure is reported by _reply_done (error + assistant_end), not only logged.
        task = self._reply = self._tasks.spawn(turn.run(), name="turn", log_failure=False)
        task.add_done_callback(self._reply_done)

    def _reply_done(self, task: asyncio.Task[TurnOutcome]) -> None:
        if task is self._reply and self._state in (S.RESPONDING, S.SPECULATING):
            playing = self._state is S.RESPONDING and self._playback.playing
            self._go(S.PLAYING_OUT if playing else S.IDLE)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # The client must never wait forever on a turn that died: tell it, and close the turn.
            log.error("assistant turn failed", exc_info=exc)
            if not self.closed:
                self._out.emit_error(msg.E_INTERNAL, "Internal error while answering")
                self._out.emit(msg.AssistantEnd())
            return
        if not self._nudging:
            # Silence is counted from the end of a real answer; a nudge does not restart the clock,
            # so an unanswered nudge is followed by the inactivity timeout, not by more nudges.
            self.last_activity = self._clock.monotonic()
        if task.result().hang_up:
            self._tasks.spawn(self._on_hang_up(), name="hang-up")

    async def cancel(self, *, record_interruption: bool, then: FloorState = S.IDLE, keep_all: bool = False) -> None:
        """Stop the current turn at once. What the listener heard of it stays in the context and the
        history (`SaidLedger`; all that was sent with `keep_all`), the rest is dropped."""
        task, turn = self._reply, self._reply_turn
        self._reply = self._reply_turn = None
        self._held = None  # a speculative answer dies with its turn
        # Audio already sent may still be playing on the client: stopping it is an interruption too.
        played, sent, was_playing = self._playback.played_s(), self._playback.sent_s, self._playback.playing
        interrupted = record_interruption
        if (barge_in := self._barge_in) is not None:
            # Stopped (and the user_interruption sent) at the barge-in: what was heard then is kept.
            self._barge_in = None
            played, sent, was_playing, record_interruption, interrupted = (
                barge_in.played_s,
                barge_in.sent_s,
                False,
                False,
                True,
            )
        self._playback.clear()
        if self.state in (S.RESPONDING, S.SPECULATING, S.PLAYING_OUT):
            self._go(then)
        stopped = False
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            stopped = True
            try:
                await task
            except asyncio.CancelledError:
                # The turn's cancellation ends here; ours (the chat closing this task) goes on.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    self._heard_of_it(played, sent, keep_all, interrupted)
                    raise
        self._heard_of_it(played, sent, keep_all, interrupted)
        if (stopped or was_playing) and record_interruption and turn is not None and turn.started_speaking:
            self._tell_interruption()

    def _tell_interruption(self) -> None:
        self._out.emit(msg.UserInterruption(time_ms=self._out.elapsed_ms()))
        self._out.record(EventRole.USER, EventType.USER_INTERRUPTION)

    def _heard_of_it(self, played_s: float, sent_s: float, keep_all: bool, interrupted: bool) -> None:
        if keep_all:
            self.said.keep_all()
        else:
            self.said.cut(played_s, sent_s, interrupted=interrupted)

    def settle(self) -> None:
        """Keep the sentences the listener has heard by now (called on the chat's clock)."""
        self.said.settle()

    async def wait_reply(self) -> None:
        task = self._reply
        if task is not None and task is not asyncio.current_task():
            # Waits for the turn however it ends, without swallowing the waiter's own cancellation.
            await asyncio.wait({task})

    async def close(self) -> None:
        """The chat ends: what was sent counts as said (the client plays out its goodbye)."""
        self.closed = True
        await self.cancel(record_interruption=False, keep_all=True)

    # --- pause ------------------------------------------------------------------------------

    async def pause(self) -> None:
        await self.cancel(record_interruption=False)
        self.paused = True

    async def resume(self) -> None:
        self.paused = False
        if self.unanswered:
            self.unanswered = False
            await self.reply()

    # --- user turns -------------------------------------------------------------------------

    async def user_typed(self, text: str) -> None:
        """A typed user_input. A spoken turn the user finished before it is answered first."""
        if self._closing or self._typed:
            self._typed.append(text)
            return
        self.timings = TurnTimings()
        self.timings.mark("user_input")
        await self._take_floor(text, from_text=True)

    async def _take_floor(
        self,
        text: str,
        *,
        from_text: bool,
        begin_ms: int | None = None,
        end_ms: int | None = None,
        emotions: dict[str, float] | None = None,
        language: str | None = None,
    ) -> None:
        """A finished user turn (typed, or transcribed speech): show it, store it, answer it.

        A typed turn keeps what was sent of the answer it interrupts as said (the client shows each
        assistant_message's text as it comes); a spoken one keeps what the listener heard."""
        await self.cancel(record_interruption=True, keep_all=from_text)
        self._show(text, from_text=from_text, begin_ms=begin_ms, end_ms=end_ms, emotions=emotions, language=language)
        if self.paused:
            self.unanswered = True
            return
        await self.reply()

    def _show(
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
        now = self._out.elapsed_ms() if end_ms is None else end_ms
        self._out.emit(
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
        self._out.record(EventRole.USER, EventType.USER_MESSAGE, text, emotion_features=features)
        if to_model:
            self._conversation.heard(language, emotions)  # issue 17: the reply's language and delivery
            self._conversation.add_user(text, emotions=emotions)

    def _spoken_turn_settled(self) -> None:
        self._closing = max(0, self._closing - 1)
        if not self._closing and self._typed and (self._typed_task is None or self._typed_task.done()):
            self._typed_task = self._tasks.spawn(self._answer_typed(), name="typed-turns")

    async def _answer_typed(self) -> None:
        """Typed turns that waited for a spoken one: each after the answer before it has been heard."""
        while self._typed and not self.closed:
            await self.wait_reply()
            while self.speaking:
                await self._clock.sleep(_PLAYOUT_POLL_S)
            async with self._inbound:
                if self._closing or self.closed:
                    return  # a spoken turn finished meanwhile: it goes first (and starts this again)
                if self.speaking or not self._typed:
                    continue
                text = self._typed.pop(0)
                self.timings = TurnTimings()
                self.timings.mark("user_input")
                await self._take_floor(text, from_text=True)

    # --- ListenerEvents ---------------------------------------------------------------------

    def speech_started(self) -> None:
        if self.state is S.IDLE:
            self._go(S.USER_SPEAKING)

    async def user_speaking(self, span_ms: int) -> None:
        """The user has spoken for at least min_interruption_ms in this turn: barge in if we talk."""
        self.touch()
        if self.speaking:
            self._suspend()

    def _suspend(self) -> None:
        """Barge-in: the answer stops at once (`user_interruption`), but it is dropped only once the
        user's words are heard; a barge-in that holds none (a cough, a door) resumes it where the
        listener stopped hearing it (`heard_nothing`)."""
        turn, task = self._reply_turn, self._reply
        self._barge_in = _BargeIn(self._playback.played_s(), self._playback.sent_s)
        self._playback.clear()
        self.timings.mark("barge_in")  # metrics: the barge_in stage (openevi/chat/timings.py)
        self._go(S.USER_SPEAKING)
        if turn is not None and task is not None and not task.done():
            turn.suspend()
        if turn is not None and turn.started_speaking:
            self._tell_interruption()

    async def _resume(self) -> None:
        """The barge-in held no words: the answer goes on from the first word the listener missed."""
        async with self._inbound:
            barge_in, self._barge_in = self._barge_in, None
            if barge_in is None or self.closed:
                return
            unheard = self.said.resume_point(barge_in.played_s, barge_in.sent_s)
            turn, task = self._reply_turn, self._reply
            if turn is not None and task is not None and not task.done():
                if self.state is S.USER_SPEAKING:
                    self._go(S.RESPONDING)
                turn.resume(unheard)
            elif unheard and not self.paused:
                await self.reply(speak=" ".join(unheard), from_text=False)

    async def heard_early(self, heard: HeardTurn) -> None:
        """Words ready inside the end-of-turn silence: start answering now, silently, until confirmed."""
        async with self._inbound:
            if self.closed or self.paused or self.state not in (S.IDLE, S.USER_SPEAKING):
                return
            if self.state is S.IDLE:
                self._go(S.USER_SPEAKING)
            hold = asyncio.Event()
            self._conversation.heard(heard.language, heard.emotions)  # issue 17: the reply's language and delivery
            pending = self._conversation.user_message(heard.text, emotions=heard.emotions)
            await self.reply(pending_user=pending, hold=hold)
            self._held = (hold, heard)

    async def speech_resumed(self) -> None:
        """The user spoke again inside the silence window: a speculative answer is dropped."""
        if self._held is not None:
            await self.cancel(record_interruption=False, then=S.USER_SPEAKING)

    def turn_closing(self) -> None:
        self._closing += 1

    def heard_nothing(self) -> None:
        if self._barge_in is not None:
            self._tasks.spawn(self._resume(), name="resume-answer")
        elif self._held is not None:
            # Nothing to answer: a held answer (to words the final transcript dropped) goes too.
            self._tasks.spawn(self.cancel(record_interruption=False), name="heard-nothing")
        elif self.state is S.USER_SPEAKING:
            self._go(S.IDLE)
        self._spoken_turn_settled()

    async def heard(self, heard: HeardTurn) -> None:
        try:
            async with self._inbound:
                if not self.closed:
                    await self._heard(heard)
        finally:
            self._spoken_turn_settled()

    async def _heard(self, heard: HeardTurn) -> None:
        self.touch()
        text, emotions, language = heard.text, heard.emotions, heard.language
        begin_ms, end_ms = self.offset_ms + heard.begin_ms, self.offset_ms + heard.end_ms
        if self._backchannel_tolerance and self.speaking and not heard.interrupting and is_backchannel(text):
            # "mm-hmm" while the assistant talks: shown and stored, but it keeps the floor.
            self._show(
                text,
                from_text=False,
                begin_ms=begin_ms,
                end_ms=end_ms,
                emotions=emotions,
                language=language,
                to_model=False,
            )
            return
        held, self._held = self._held, None
        if held is not None and held[1].text == text and self._reply is not None and not self._reply.done():
            self._show(text, from_text=False, begin_ms=begin_ms, end_ms=end_ms, emotions=emotions, language=language)
            self._go(S.RESPONDING)
            held[0].set()  # the speculative answer is the answer
            return
        if held is not None:
            await self.cancel(record_interruption=False)
        await self._take_floor(
            text, from_text=False, begin_ms=begin_ms, end_ms=end_ms, emotions=emotions, language=language
        )

    def interim(self, text: str, begin_ms: int, end_ms: int) -> None:
        self._out.emit(
            msg.UserMessage(
                text=text,
                begin_ms=self.offset_ms + begin_ms,
                end_ms=self.offset_ms + end_ms,
                from_text=False,
                interim=True,
            )
        )

    def error(self, message: str) -> None:
        self._out.emit_error(msg.E_INVALID_AUDIO, message)

    def audio(self, samples: np.ndarray, at_ms: int) -> None:
        self._user_audio(samples, self.offset_ms + at_ms)

    def mark(self, stage: str) -> None:
        if stage == "speech_start":
            self.timings = TurnTimings()
        elif stage == "speech_resumed":
            self.timings.forget("speech_end")
            return
        self.timings.mark(stage)
