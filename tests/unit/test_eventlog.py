"""EventLog: a chat's writes in order, and a bounded queue (backpressure on the client's messages)."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from openevi.chat.eventlog import HIGH_WATER, EventLog
from openevi.settings import Settings


class GatedWrites:
    """An EventLog on in-memory SQLite whose writes wait for `gate`, recording their order in `done`."""

    def __init__(self) -> None:
        self.engine = create_async_engine("sqlite+aiosqlite://")
        self.log = EventLog(async_sessionmaker(self.engine), chat_id="c", on_deliveries=lambda: None)
        self.gate = asyncio.Event()
        self.done: list[int] = []

    def write(self, n: int):  # type: ignore[no-untyped-def]
        async def run(session: AsyncSession) -> bool:
            await self.gate.wait()
            self.done.append(n)
            return False

        return run


async def test_a_long_queue_makes_the_next_client_message_wait_until_it_drains() -> None:
    w = GatedWrites()
    log, gate, done, write = w.log, w.gate, w.done, w.write
    log.start()
    for n in range(HIGH_WATER * 3):
        log.submit(write(n))
    waiter = asyncio.create_task(log.wait_for_room())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiter.done()  # the store is stuck: the client's next message must wait
    gate.set()
    await asyncio.wait_for(waiter, 30)  # bounds a hang only
    assert len(done) >= HIGH_WATER * 3 - HIGH_WATER // 2  # it went on once the queue was half drained
    await log.close()
    assert done == list(range(HIGH_WATER * 3))  # in order, none lost
    await log.wait_for_room()  # no writer: never waits
    await w.engine.dispose()


async def test_synced_returns_once_every_write_submitted_before_it_is_committed() -> None:
    w = GatedWrites()
    log, gate, done, write = w.log, w.gate, w.done, w.write
    await log.synced()  # nothing submitted: at once
    log.start()
    log.submit(write(1))
    log.submit(write(2))
    synced = asyncio.create_task(log.synced())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not synced.done()
    gate.set()
    await asyncio.wait_for(synced, 30)  # bounds a hang only
    assert done == [1, 2]
    await log.close()
    await w.engine.dispose()


async def test_the_chat_socket_sends_a_message_only_after_its_event_is_stored() -> None:
    """kill -9 right after a client received a user_message used to lose it (1 in 54): the socket
    sent it while its event still sat in the history queue. Now the send waits for the write."""
    from openevi.api.chat_ws import _pump
    from openevi.schemas import messages as msg

    stored = asyncio.Event()
    sent: list[str] = []

    class History:
        async def synced(self) -> None:
            await stored.wait()

    class Runtime:
        settings = Settings()

    class Session:
        history = History()
        runtime = Runtime()
        close_code, close_reason = 1000, ""

        def unsubscribe(self, queue: object) -> None:
            pass

    class Socket:
        client_state = None

        async def receive(self) -> dict[str, str]:
            await asyncio.Event().wait()
            return {"type": "websocket.disconnect"}

        async def send_text(self, text: str) -> None:
            sent.append(text)

    outbound: asyncio.Queue[msg.ServerMessage | None] = asyncio.Queue()
    pump = asyncio.create_task(_pump(Socket(), Session(), outbound, observer=False))  # type: ignore[arg-type]
    outbound.put_nowait(msg.UserMessage(text="my order number is 42", begin_ms=0, end_ms=1, from_text=True))
    for _ in range(20):
        await asyncio.sleep(0)
    assert sent == []  # not before its event is stored
    stored.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(sent) == 1 and "my order number is 42" in sent[0]
    pump.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump
