"""Every task of a chat belongs to its TaskScope: none outlives the chat, one failing spares the rest."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openevi.chat.config import BuiltinTool, ChatConfig
from openevi.chat.tasks import TaskScope
from openevi.llm.base import TextDelta, ToolCall
from openevi.schemas.chat_types import ChatStatus
from openevi.schemas.protocol import AudioConfiguration
from openevi.speech.asr.base import ASRCapabilities, Transcript
from openevi.store.db import now_ms
from tests.support.fakes import HOLD, FakeClock, FakeEngine, LoudnessVAD, receive_until, settle

RATE = 16_000
FRAME = 512


class StuckASR:
    """A recognizer that never answers (its caller's task stays pending until cancelled)."""

    capabilities = ASRCapabilities(streaming=False, sample_rate=RATE)

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


class StuckProsody:
    """Scores that never come."""

    sample_rate = RATE

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def speech_then_silence() -> bytes:
    samples = np.concatenate([np.full(FRAME * 20, 0.5, dtype=np.float32), np.zeros(FRAME * 4, dtype=np.float32)])
    return (samples * 32767).astype("<i2").tobytes()


def task_names(tasks: set[asyncio.Task[Any]]) -> set[str]:
    return {t.get_name().split("-chat-")[0] for t in tasks if not t.done()}


async def test_close_leaves_no_task_of_the_chat_running(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path, clock=FakeClock())
    engine.runtime.vad = LoudnessVAD()
    engine.runtime.asr = StuckASR()
    engine.runtime.prosody = StuckProsody()
    before = asyncio.all_tasks()
    session = engine.session(started_ms=now_ms())  # the recording's timeline starts with the chat
    session.ear.configure(AudioConfiguration(encoding="linear16", sample_rate=RATE, channels=1))
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    engine.model.replies.append([TextDelta("First sentence. "), HOLD])  # the turn stays open
    await session.handle({"type": "user_input", "text": "hello"})
    await receive_until(queue, "audio_output")
    await session.handle_audio(speech_then_silence())  # the listener starts transcribing early
    await settle()
    during = asyncio.all_tasks() - before
    names = task_names(during)
    for expected in ("timeouts", "turn", "speaker", "assistant-prosody", "listener-speculate", "listener-early"):
        assert expected in names, f"{expected} not running: {sorted(names)}"
    assert {t for t in during if not t.done()} <= set(session.tasks.running())  # all owned by the chat
    await session.close(ChatStatus.USER_ENDED, reason="bye")
    assert asyncio.all_tasks() - before == set()
    assert session.tasks.running() == []


async def test_a_chat_that_hangs_up_on_itself_leaves_no_task(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path, clock=FakeClock())
    before = asyncio.all_tasks()
    engine.model.replies.append([TextDelta("Goodbye then. "), ToolCall("c1", "hang_up", "{}")])
    session = engine.session(ChatConfig(builtin_tools=(BuiltinTool("hang_up"),)))
    session.subscribe()
    await session.start(resumed=False, session_settings=None)
    await session.handle({"type": "user_input", "text": "please hang up"})
    async with asyncio.timeout(10):  # a guard against a hang
        await session.closed.wait()
    await settle(2)  # the hang-up task returns from close()
    assert session.status == ChatStatus.USER_ENDED
    assert asyncio.all_tasks() - before == set()


async def test_a_failed_task_is_logged_and_spares_the_others(caplog: pytest.LogCaptureFixture) -> None:
    scope = TaskScope("chat x")
    sibling = scope.spawn(asyncio.Event().wait(), name="sibling")

    async def broken() -> None:
        raise RuntimeError("a bug")

    with caplog.at_level(logging.ERROR, logger="openevi.chat.tasks"):
        scope.spawn(broken(), name="broken")
        await settle(3)
    assert "broken failed" in caplog.text and "a bug" in caplog.text
    assert not sibling.done()
    await scope.aclose()
    assert sibling.cancelled()


async def test_closing_from_inside_a_task_of_the_scope(tmp_path: Path) -> None:
    scope = TaskScope("chat x")
    others = [scope.spawn(asyncio.Event().wait(), name=f"other-{n}") for n in range(3)]

    async def closer() -> str:
        await scope.aclose()  # must not wait for itself
        return "closed"

    assert await scope.spawn(closer(), name="closer") == "closed"
    assert all(t.cancelled() for t in others)
    late_ran = False

    async def late() -> None:
        nonlocal late_ran
        late_ran = True

    task = scope.spawn(late(), name="late")  # the chat is over: the work never starts
    await asyncio.wait({task})
    assert task.cancelled() and not late_ran and scope.closed


async def test_a_closer_cancelled_mid_close_still_ends_the_chat(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    session = engine.session(ChatConfig())
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    history = engine.histories[0]
    flushed = asyncio.Event()

    async def slow_close() -> None:  # the history's last writes take a while
        await flushed.wait()
        history.closed = True

    history.close = slow_close  # type: ignore[method-assign]
    closer = asyncio.create_task(session.close(ChatStatus.USER_ENDED, reason="bye"))
    await settle(20)
    assert history.ended is not None and not session.closed.is_set()  # waiting for the writes
    closer.cancel()  # e.g. the socket handler's task, cancelled at server shutdown
    await settle(3)
    flushed.set()
    async with asyncio.timeout(5):
        await session.closed.wait()
    assert history.closed
    while (message := await queue.get()) is not None:
        pass
    assert message is None  # the sockets are told the chat is over
