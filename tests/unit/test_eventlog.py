"""EventLog: a chat's writes in order, and a bounded queue (backpressure on the client's messages)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from openevi.chat.eventlog import HIGH_WATER, EventLog


async def test_a_long_queue_makes_the_next_client_message_wait_until_it_drains() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    log = EventLog(async_sessionmaker(engine), chat_id="c", on_deliveries=lambda: None)
    gate = asyncio.Event()
    done: list[int] = []

    def write(n: int):  # type: ignore[no-untyped-def]
        async def run(session: AsyncSession) -> bool:
            await gate.wait()
            done.append(n)
            return False

        return run

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
    await engine.dispose()
