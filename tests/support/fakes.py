"""In-memory fakes of the chat engine's ports and providers, for fast in-process session tests.

engine = FakeEngine(tmp_path)                 # settings, runtime, fakes wired together
session = engine.session(ChatConfig())        # a ChatSession on a FakeHistory
await session.start(resumed=False, session_settings=None)
engine.model.replies.append([TextDelta("Hi.")])
await session.handle({"type": "user_input", "text": "hello"})
messages = await engine.until(session, "assistant_end")
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openevi.bus.memory import MemoryBus
from openevi.chat.clock import Clock, SystemClock
from openevi.chat.config import ChatConfig
from openevi.chat.listener import HeardTurn
from openevi.chat.ports import ChatEnd, PastEvent
from openevi.chat.runtime import ChatRuntime
from openevi.chat.session import ChatSession
from openevi.llm.base import GenerationRequest, LanguageModel, LLMEvent
from openevi.schemas.chat_types import EventRole, EventType
from openevi.schemas.messages import ServerMessage
from openevi.settings import Settings
from openevi.speech.asr.base import ASRCapabilities, Transcript
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.voices import Voice


@dataclass
class StoredEvent:
    role: str
    type: str
    message_text: str | None
    emotion_features: str | None = None
    event_metadata: str | None = None
    related_event_id: str | None = None
    id: str = ""


class FakeHistory:
    """ChatHistory in memory: what was recorded, in order."""

    def __init__(self, earlier: list[PastEvent] | None = None) -> None:
        self.events: list[StoredEvent] = []
        self.errors: list[dict[str, Any]] = []
        self.tool_webhooks: list[dict[str, Any]] = []
        self.ended: ChatEnd | None = None
        self.started = False
        self.closed = False
        self._earlier = earlier or []

    def start(self) -> None:
        self.started = True

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
        event_id = f"e{len(self.events)}"
        self.events.append(
            StoredEvent(str(role), str(type_), text, emotion_features, metadata, related_event_id, event_id)
        )
        return event_id

    def record_errors(self, errors: list[dict[str, Any]]) -> None:
        self.errors = list(errors)

    def notify_tool_call(self, webhooks: list[dict[str, Any]], payload: dict[str, Any]) -> None:
        self.tool_webhooks.append(payload)

    def end(self, end: ChatEnd) -> None:
        if self.started:  # as StoredHistory: a log that never started writes nothing
            self.ended = end

    async def earlier_events(self) -> list[PastEvent]:
        return list(self._earlier)

    async def wait_for_room(self) -> None:
        pass

    async def synced(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    def types(self) -> list[str]:
        return [e.type for e in self.events]


class FakeTTS:
    """Speech as quiet noise, 60 ms per word, at 24 kHz; text containing `crash_on` raises RuntimeError
    (a provider bug, not a TTSError)."""

    sample_rate = 24_000

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.voices: list[Voice] = []  # the voice each text was spoken with
        self.crash_on: str | None = None

    async def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        if self.crash_on is not None and self.crash_on in text:
            raise RuntimeError(f"speech provider crashed on {text!r}")
        self.spoken.append(text)
        self.voices.append(voice)
        samples = int(self.sample_rate * 0.06) * max(1, len(text.split()))
        audio = (np.random.default_rng(len(text)).normal(0, 0.05, samples) * 32767).astype("<i2")
        for start in range(0, samples, 2400):
            await asyncio.sleep(0)
            yield audio[start : start + 2400].tobytes()

    async def aclose(self) -> None:
        pass


class LoudnessVAD:
    """A VAD that calls a 512-sample frame at 16 kHz speech when it is loud: tests decide which are."""

    sample_rate = 16_000
    frame_samples = 512

    def stream(self) -> LoudnessVAD:
        return self

    def probability(self, frame: np.ndarray) -> float:
        return 1.0 if float(np.abs(frame).max()) > 0.1 else 0.0

    def reset(self) -> None:
        pass


class FixedASR:
    """A recognizer (16 kHz, not streaming) that hears `text` in any audio."""

    capabilities = ASRCapabilities(streaming=False, sample_rate=16_000)

    def __init__(self, text: str) -> None:
        self.text = text

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        return Transcript(self.text, "en")

    async def aclose(self) -> None:
        pass


class ListenerLog:
    """ListenerEvents that only write down what the listener told them, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.spans: list[int] = []
        self.turns: list[HeardTurn] = []
        self.early: list[HeardTurn] = []
        self.errors: list[str] = []

    def speech_started(self) -> None:
        self.events.append("speech_started")

    async def user_speaking(self, span_ms: int) -> None:
        self.spans.append(span_ms)

    async def heard_early(self, heard: HeardTurn) -> None:
        self.early.append(heard)

    async def speech_resumed(self) -> None:
        self.events.append("speech_resumed")

    def turn_closing(self) -> None:
        self.events.append("turn_closing")

    async def heard(self, heard: HeardTurn) -> None:
        self.events.append("heard")
        self.turns.append(heard)

    def heard_nothing(self) -> None:
        self.events.append("heard_nothing")

    def interim(self, text: str, begin_ms: int, end_ms: int) -> None:
        self.events.append("interim")

    def error(self, message: str) -> None:
        self.errors.append(message)

    def audio(self, samples: np.ndarray, at_ms: int) -> None:
        pass

    def mark(self, stage: str) -> None:
        pass


class FakeProsody:
    """Scores every utterance the same: Calmness highest."""

    sample_rate = 16_000

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        return {name: (0.6 if name == "calmness" else 0.05) for name in EMOTIONS}


class Hold:
    """In a scripted reply: wait here until the model's `gate` is set (the turn stays open)."""


HOLD = Hold()
Reply = list[LLMEvent | Hold] | Callable[[GenerationRequest], list[LLMEvent | Hold]] | Exception


@dataclass
class ScriptedModel:
    """A language model whose replies are queued by the test; `requests` records what it was sent."""

    name: str = "scripted"
    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=list)
    requests: list[GenerationRequest] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    """What a HOLD in a reply waits for."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else self.default
        if isinstance(reply, Exception):
            raise reply
        events = reply(request) if callable(reply) else reply
        for event in events:
            await asyncio.sleep(0)
            if isinstance(event, Hold):
                await self.gate.wait()
            else:
                yield event

    async def aclose(self) -> None:
        pass


class FakeClock:
    """A Clock whose time moves only when the test says so (`await clock.advance(seconds)`).

    Sleepers wake in deadline order, each at its own deadline, and the loop is given a few turns
    after each wake so the woken task can act (and sleep again) before time moves on.
    """

    SETTLE_TURNS = 20

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        await wake

    @property
    def sleeping(self) -> int:
        """How many sleepers are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, wake in self._sleepers if not wake.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper whose deadline passes, in order."""
        target = self.now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            if not wake.done():
                wake.set_result(None)
                await settle(self.SETTLE_TURNS)
        self.now = target
        await settle(self.SETTLE_TURNS)


async def settle(turns: int = 20) -> None:
    """Give the event loop `turns` turns (tasks that are ready run; no real time passes)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class FakeEngine:
    """A runtime of fakes (no database, no models) and the sessions built on it."""

    def __init__(self, data_dir: Path, *, clock: Clock | None = None, **settings: Any) -> None:
        self.settings = Settings(data_dir=data_dir, audio_lead_ms=600_000, **settings)
        self.model = ScriptedModel()
        self.tts = FakeTTS()
        self.runtime = ChatRuntime(
            settings=self.settings,
            db=None,  # type: ignore[arg-type]  # the FakeHistory port stands in for the store
            bus=MemoryBus(),
            tts=self.tts,
            language_model=self._model,
            prosody=FakeProsody(),
            clock=clock or SystemClock(),
        )
        self.histories: list[FakeHistory] = []

    def _model(self, config: dict[str, Any] | None, api_key: str | None) -> LanguageModel:
        return self.model

    def session(
        self, config: ChatConfig | None = None, *, history: FakeHistory | None = None, started_ms: int = 0
    ) -> ChatSession:
        history = history or FakeHistory()
        self.histories.append(history)
        return ChatSession(
            self.runtime,
            account_id="account",
            config=config or ChatConfig(),
            history=history,
            chat_id=f"chat-{len(self.histories)}",
            chat_group_id="group",
            started_ms=started_ms,
            allow_connection=False,
            verbose_transcription=False,
        )


async def receive_until(
    queue: asyncio.Queue[ServerMessage | None], kind: str, *, limit_s: float = 10.0
) -> list[ServerMessage]:
    """Messages from a subscribed queue up to and including the first of type `kind`."""
    seen: list[ServerMessage] = []
    async with asyncio.timeout(limit_s):
        while True:
            message = await queue.get()
            if message is None:
                raise AssertionError(f"the chat ended before {kind}: {kinds(seen)}")
            seen.append(message)
            if message.type == kind:
                return seen


def kinds(messages: list[ServerMessage]) -> list[str]:
    return [m.type for m in messages]
