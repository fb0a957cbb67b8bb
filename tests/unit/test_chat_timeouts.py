"""A chat's timers on a fake clock: inactivity and maximum-duration timeouts, nudges, and what does
(user activity, pause, the assistant speaking) and does not count as silence. No real time passes:
the clock moves only when a test advances it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openevi.chat.config import ChatConfig, EventMessage, Timeout
from openevi.chat.session import ChatSession, Phase
from openevi.llm.base import TextDelta
from openevi.schemas import messages as msg
from openevi.schemas.chat_types import ChatStatus
from openevi.schemas.messages import ServerMessage
from tests.support.fakes import HOLD, FakeClock, FakeEngine, receive_until, settle

OFF = Timeout(enabled=False, duration_s=600)
GOODBYE = EventMessage(enabled=True, text="Goodbye for now.")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(tmp_path, clock=clock)
    engine.model.default = [TextDelta("Are you still there?")]
    return engine


async def started(engine: FakeEngine, config: ChatConfig) -> tuple[ChatSession, asyncio.Queue[ServerMessage | None]]:
    session = engine.session(config)
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    first = await queue.get()
    assert first is not None and first.type == "chat_metadata"
    await settle()  # the timeouts watcher is asleep on the fake clock
    return session, queue


async def rest_of_stream(queue: asyncio.Queue[ServerMessage | None]) -> list[ServerMessage]:
    """Every message until the chat's stream ends (None)."""
    seen: list[ServerMessage] = []
    async with asyncio.timeout(10):  # a guard against a hang, not a measurement
        while (message := await queue.get()) is not None:
            seen.append(message)
    return seen


def said(messages: list[ServerMessage]) -> list[str]:
    return [m.text for m in messages if isinstance(m, msg.AssistantMessage)]


async def test_inactivity_ends_a_silent_chat_without_a_goodbye(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=Timeout(True, 10)))
    await clock.advance(9.5)
    assert session.status is None and session.phase is Phase.OPEN
    await clock.advance(1.0)
    messages = await rest_of_stream(queue)
    assert said(messages) == [] and engine.model.requests == []
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT
    ended = engine.histories[0].ended
    assert ended is not None and ended.status == ChatStatus.INACTIVITY_TIMEOUT
    assert ended.message == "on_inactivity_timeout"
    assert session.tasks.running() == []  # the watcher closed the chat and is gone with it


async def test_inactivity_says_the_configured_goodbye_before_closing(engine: FakeEngine, clock: FakeClock) -> None:
    config = ChatConfig(inactivity=Timeout(True, 10), on_inactivity_timeout=GOODBYE)
    session, queue = await started(engine, config)
    await clock.advance(10.5)
    messages = await rest_of_stream(queue)
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT
    assert said(messages) == ["Goodbye for now."]
    assert [m.type for m in messages if m.type != "audio_output"][-1] == "assistant_end"  # said in full
    assert engine.model.requests == []  # spoken verbatim, not generated
    ended = engine.histories[0].ended
    assert ended is not None and ended.status == ChatStatus.INACTIVITY_TIMEOUT
    assert "AGENT_MESSAGE" in engine.histories[0].types()


async def test_max_duration_cuts_off_even_a_talking_assistant(engine: FakeEngine, clock: FakeClock) -> None:
    config = ChatConfig(
        inactivity=OFF,
        max_duration=Timeout(True, 60),
        on_max_duration_timeout=EventMessage(enabled=True, text="Our time is up."),
    )
    session, queue = await started(engine, config)
    await clock.advance(50)
    engine.model.replies.append([TextDelta("Let me think about that. "), HOLD])  # talks on, never done
    await session.handle({"type": "user_input", "text": "Tell me everything."})
    await receive_until(queue, "audio_output")
    await clock.advance(9.5)  # 59.5 s into the chat
    assert session.status is None and session.speaking
    await clock.advance(1.0)
    messages = await rest_of_stream(queue)
    assert said(messages)[-1] == "Our time is up."
    assert "user_interruption" not in [m.type for m in messages]  # the server cut in, not the user
    assert session.status == ChatStatus.MAX_DURATION_TIMEOUT
    ended = engine.histories[0].ended
    assert ended is not None and ended.message == "on_max_duration_timeout"


async def test_one_nudge_per_silence(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=OFF, nudge_interval_s=5))
    await clock.advance(4.5)
    assert engine.model.requests == []
    await clock.advance(1.0)
    messages = await receive_until(queue, "assistant_end")
    assert said(messages) == ["Are you still there?"]
    assert "silent" in (engine.model.requests[0].messages[0].content or "")  # asked to check in
    await clock.advance(120)  # the user stays silent: no second nudge
    assert len(engine.model.requests) == 1 and queue.empty() and session.status is None
    # The user comes back: a new silence may be nudged once again.
    engine.model.replies.append([TextDelta("Welcome back.")])
    await session.handle({"type": "user_input", "text": "Sorry, I'm back."})
    await receive_until(queue, "assistant_end")
    await clock.advance(4.5)
    assert len(engine.model.requests) == 2
    await clock.advance(1.0)
    assert said(await receive_until(queue, "assistant_end")) == ["Are you still there?"]
    assert len(engine.model.requests) == 3


async def test_no_inactivity_timeout_while_the_assistant_is_playing(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=Timeout(True, 2)))
    words = " ".join(["word"] * 60)  # FakeTTS: 60 ms a word, 3.6 s of audio sent at once
    engine.model.replies.append([TextDelta(words + ".")])
    await session.handle({"type": "user_input", "text": "Talk to me."})
    await receive_until(queue, "assistant_end")
    await clock.advance(3.0)  # past the inactivity limit, but the listener still hears the answer
    assert session.speaking and session.status is None
    await clock.advance(3.0)  # playback over, and silence since
    await rest_of_stream(queue)
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT


async def test_no_inactivity_timeout_while_the_assistant_is_generating(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=Timeout(True, 2)))
    engine.model.replies.append([HOLD, TextDelta("Finally.")])  # a slow model
    await session.handle({"type": "user_input", "text": "Think hard."})
    await clock.advance(30)
    assert session.status is None and session.speaking
    engine.model.gate.set()
    await receive_until(queue, "assistant_end")
    await clock.advance(3.0)
    await rest_of_stream(queue)
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT


async def test_no_inactivity_timeout_while_paused(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=Timeout(True, 2)))
    await session.handle({"type": "pause_assistant_message"})
    await clock.advance(30)
    assert session.status is None and session.paused
    await session.handle({"type": "resume_assistant_message"})  # a client message: activity
    await clock.advance(1.5)
    assert session.status is None
    await clock.advance(1.0)
    await rest_of_stream(queue)
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT


async def test_the_user_speaking_restarts_the_silence(engine: FakeEngine, clock: FakeClock) -> None:
    session, queue = await started(engine, ChatConfig(inactivity=Timeout(True, 2), nudge_interval_s=1.5))
    await clock.advance(1.25)
    await session.floor.user_speaking(300)  # the listener heard the user (not yet a whole turn)
    await clock.advance(1.25)  # 2.5 s into the chat, 1.25 s of silence: neither nudge nor timeout
    assert session.status is None and engine.model.requests == []
    await clock.advance(0.5)  # 1.75 s of silence: the nudge
    await receive_until(queue, "assistant_end")
    assert len(engine.model.requests) == 1
    await clock.advance(0.5)  # 2.25 s of silence, the nudge unanswered: the timeout
    await rest_of_stream(queue)
    assert session.status == ChatStatus.INACTIVITY_TIMEOUT
