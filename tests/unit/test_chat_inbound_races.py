"""Client messages that race the chat's start and end: none is handled before the chat is set up
(chat_metadata first) or after it has ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from openevi.bus.base import Handler, Presence
from openevi.bus.memory import MemoryBus
from openevi.schemas.chat_types import ChatStatus
from openevi.schemas.messages import ServerMessage
from tests.support.fakes import FakeEngine, FakeHistory, receive_until, settle


class SlowBus(MemoryBus):
    """A bus whose registration waits on the network, as Redis's does."""

    async def register(self, chat_id: str, handler: Handler, presence: Presence | None = None) -> None:
        await asyncio.sleep(0)
        await super().register(chat_id, handler, presence)


def drained(queue: asyncio.Queue[ServerMessage | None]) -> list[str]:
    kinds = []
    while not queue.empty():
        message = queue.get_nowait()
        kinds.append("end" if message is None else message.type)
    return kinds


async def test_a_message_sent_while_the_chat_registers_waits_for_chat_metadata(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    engine.runtime.bus = SlowBus()
    session = engine.session()
    queue = session.subscribe()
    # The socket's reader runs beside start(), as in api/chat_ws.py; its first frame is already there.
    early = asyncio.create_task(session.handle({"type": "session_settings", "system_prompt": "Be brief."}))
    await session.start(resumed=False, session_settings=None)
    await early
    await settle()
    assert drained(queue)[:2] == ["chat_metadata", "session_settings"]
    await session.close(ChatStatus.USER_ENDED)


async def test_audio_sent_while_the_chat_registers_is_handled_after_chat_metadata(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    engine.runtime.bus = SlowBus()
    session = engine.session()
    queue = session.subscribe()
    audio = (np.zeros(1600, dtype=np.float32)).astype("<i2").tobytes()
    early = asyncio.create_task(session.handle_audio(audio))
    await session.start(
        resumed=False, session_settings={"audio": {"encoding": "linear16", "sample_rate": 16000, "channels": 1}}
    )
    await early
    await settle()
    assert drained(queue)[0] == "chat_metadata"
    await session.close(ChatStatus.USER_ENDED)


async def test_messages_queued_behind_a_handler_are_dropped_once_the_chat_ends(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    session = engine.session()
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    await receive_until(queue, "chat_metadata")
    history = engine.histories[0]
    async with session.inbound:  # a handler still at work (e.g. a transcribed turn) holds the chat
        text = asyncio.create_task(session.handle({"type": "user_input", "text": "hello"}))
        audio = asyncio.create_task(session.handle_audio(b"\x00\x00" * 1600))
        await settle()
        await session.close(ChatStatus.USER_ENDED)
    await asyncio.gather(text, audio)
    recorded_after_end = history.types()[history.types().index("SYSTEM_PROMPT") + 1 :]
    assert "USER_MESSAGE" not in recorded_after_end
    assert session.ear.listener is None  # no ear (and no decoder thread) built for a chat that is over
    assert drained(queue) == ["end"]


async def test_a_chat_ended_while_it_registers_is_not_left_on_the_bus(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    bus = SlowBus()
    engine.runtime.bus = bus
    session = engine.session()
    queue = session.subscribe()
    starting = asyncio.create_task(session.start(resumed=False, session_settings=None))
    await asyncio.sleep(0)  # start() is registering the chat
    await session.close(ChatStatus.USER_ENDED, reason="api_key_revoked")  # e.g. its key was revoked
    await starting
    assert not await bus.publish(session.chat_id, {"type": "user_input", "text": "hello"})
    assert drained(queue) == ["end"]  # no chat_metadata for a chat that is over
    assert session.tasks.running() == []


class SlowToCloseHistory(FakeHistory):
    """A history whose last writes take a while (a store under load)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = asyncio.Event()

    async def close(self) -> None:
        await self.flushed.wait()
        await super().close()


async def test_a_second_close_returns_only_once_the_chat_has_ended(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    history = SlowToCloseHistory()
    session = engine.session(history=history)
    session.subscribe()
    await session.start(resumed=False, session_settings=None)
    first = asyncio.create_task(session.close(ChatStatus.INACTIVITY_TIMEOUT, reason="on_inactivity_timeout"))
    await settle()
    # The socket's end, or shutdown, closing the chat too: it must not return before the end is stored.
    second = asyncio.create_task(session.close(ChatStatus.USER_ENDED, reason="server shutting down"))
    await settle()
    assert not second.done()
    history.flushed.set()
    await asyncio.wait_for(asyncio.gather(first, second), timeout=10)  # a guard against a hang
    assert history.closed and history.ended is not None
    assert history.ended.status == ChatStatus.INACTIVITY_TIMEOUT  # the first closer's reason stands


async def test_a_close_that_fails_half_way_does_not_hang_the_next_caller(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    session = engine.session()
    session.subscribe()
    await session.start(resumed=False, session_settings=None)

    async def broken() -> None:
        raise RuntimeError("store unreachable")

    session.history.close = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await session.close(ChatStatus.USER_ENDED)
    await asyncio.wait_for(session.close(ChatStatus.USER_ENDED), timeout=10)  # returns at once


async def test_a_chat_closed_before_it_started_still_stores_its_end(tmp_path: Path) -> None:
    # Its key was revoked between admission and start (the socket was being accepted).
    engine = FakeEngine(tmp_path)
    session = engine.session()
    queue = session.subscribe()
    await session.close(ChatStatus.ERROR, reason="api key revoked")
    history = engine.histories[0]
    assert history.ended is not None and history.ended.status == ChatStatus.ERROR and history.closed
    await session.start(resumed=False, session_settings=None)  # the transport goes on: nothing happens
    assert drained(queue) == ["end"]  # no chat_metadata: the socket is just closed
