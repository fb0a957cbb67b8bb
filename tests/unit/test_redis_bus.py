"""The Redis bus between two "instances" in one process, on a real redis-server; and MemoryBus's observers."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from openevi.bus.base import Presence, StreamEnd
from openevi.bus.memory import MemoryBus
from openevi.bus.redis import RedisBus, chat_key, instance_key
from openevi.chat.ports import Fanout
from openevi.schemas import messages as msg
from tests.support.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # fixture


def new_id() -> str:
    return secrets.token_hex(6)


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    buses = [
        RedisBus(redis_server.url, instance_id=f"inst-{name}-{new_id()}", heartbeat_s=0.2, ack_timeout_s=1.0)
        for name in "ab"
    ]
    for bus in buses:
        await bus.start()
    yield buses[0], buses[1]
    for bus in buses:
        await bus.close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages


async def test_send_reaches_a_chat_on_another_instance_in_order(pair: tuple[RedisBus, RedisBus]) -> None:
    home, other = pair
    chat_id, inbox = new_id(), Inbox()
    await home.register(chat_id, inbox, Presence(account_id="acct", allow_connection=False, outbound=Fanout()))

    located = await other.locate(chat_id)
    assert located is not None and located.instance_id == home.instance_id and located.account_id == "acct"
    assert not located.allow_connection
    for i in range(5):
        assert await other.publish(chat_id, {"type": "user_input", "text": f"m{i}"})
    assert [m["text"] for m in await inbox.wait_for(5)] == [f"m{i}" for i in range(5)]

    await home.unregister(chat_id)
    assert await other.locate(chat_id) is None
    assert not await other.publish(chat_id, {"type": "user_input", "text": "late"})
    assert len(inbox.messages) == 5


async def test_send_to_a_chat_live_nowhere_is_refused(
    pair: tuple[RedisBus, RedisBus], redis_server: RedisServer
) -> None:
    home, other = pair
    assert not await other.publish(new_id(), {"type": "user_input", "text": "nobody"})
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        # A directory entry whose instance does not listen (it died before its lease ran out).
        ghost = new_id()
        entry = {"instance": "dead-" + new_id(), "account_id": "acct", "allow_connection": True}
        await client.set(chat_key(ghost), json.dumps(entry), px=10_000)
        assert not await other.publish(ghost, {"type": "user_input", "text": "ghost"})
        # An entry naming a live instance that does not hold the chat: it answers no.
        stray = new_id()
        entry["instance"] = home.instance_id
        await client.set(chat_key(stray), json.dumps(entry), px=10_000)
        assert not await other.publish(stray, {"type": "user_input", "text": "stray"})
    finally:
        await client.aclose()


async def test_observer_on_another_instance_gets_the_stream_and_its_end(pair: tuple[RedisBus, RedisBus]) -> None:
    home, other = pair
    chat_id, fanout = new_id(), Fanout()
    presence = Presence(account_id="acct", allow_connection=True, outbound=fanout, closing=lambda: (4001, "bye"))
    await home.register(chat_id, Inbox(), presence)
    async with other.observe(chat_id) as stream:
        for i in range(3):
            fanout.send(msg.AssistantMessage(id=f"m{i}", text=f"piece {i}", from_text=True))
        await home.unregister(chat_id)
        fanout.close()
        seen = []
        async with asyncio.timeout(10):
            while not isinstance(item := await stream.get(), StreamEnd):
                seen.append(item)
    assert [m["message"]["content"] for m in seen] == ["piece 0", "piece 1", "piece 2"]  # the EVI wire form
    assert item == StreamEnd(4001, "bye")


async def test_a_slow_observer_is_cut_off(redis_server: RedisServer) -> None:
    home = RedisBus(redis_server.url, instance_id="slow-home-" + new_id(), heartbeat_s=0.2)
    other = RedisBus(redis_server.url, instance_id="slow-obs-" + new_id(), heartbeat_s=0.2, observer_queue_max=4)
    await home.start()
    await other.start()
    try:
        chat_id, fanout = new_id(), Fanout()
        await home.register(chat_id, Inbox(), Presence(account_id="a", allow_connection=True, outbound=fanout))
        async with other.observe(chat_id) as stream:
            for i in range(50):
                fanout.send(msg.AudioOutput(id="m", index=i, pcm=b"\x00\x00" * 240, rate=24_000))
            async with asyncio.timeout(10):
                while not stream.full():  # noqa: ASYNC110 (the relay fills it; nothing to wait on)
                    await asyncio.sleep(0.01)
            items = [stream.get_nowait() for _ in range(stream.qsize())]
        assert len(items) == 5 and items[-1] == StreamEnd(1013, "observer too slow")
        assert [m["index"] for m in items[:-1]] == [0, 1, 2, 3]  # type: ignore[index]
    finally:
        await home.close()
        await other.close()


async def test_observer_ends_when_the_home_instance_dies(redis_server: RedisServer) -> None:
    # A lease of 10 heartbeats: a stalled event loop on a loaded machine must not end it before the crash.
    home = RedisBus(redis_server.url, instance_id="dying-" + new_id(), lease_s=1.0, heartbeat_s=0.1)
    other = RedisBus(redis_server.url, instance_id="survivor-" + new_id(), heartbeat_s=0.1)
    await home.start()
    await other.start()
    try:
        chat_id = new_id()
        await home.register(chat_id, Inbox(), Presence(account_id="a", allow_connection=True, outbound=Fanout()))
        assert await other.instances_alive([home.instance_id, "never-" + new_id()]) == {home.instance_id}
        async with other.observe(chat_id) as stream:
            # A crash: the heartbeat stops and nothing is cleaned up; the leases run out.
            for task in home._tasks:
                task.cancel()
            async with asyncio.timeout(10):
                end = await stream.get()
        assert end == StreamEnd(1011, "chat is no longer live")
        assert await other.instances_alive([home.instance_id]) == set()
        assert await other.locate(chat_id) is None
    finally:
        await home.close()
        await other.close()


async def test_a_clean_close_gives_up_the_instance_lease(redis_server: RedisServer) -> None:
    bus = RedisBus(redis_server.url, instance_id="clean-" + new_id())
    await bus.start()
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await client.pttl(instance_key(bus.instance_id)) > 0  # a lease, not a permanent key
        await bus.close()
        assert not await client.exists(instance_key(bus.instance_id))
    finally:
        await client.aclose()


async def test_memory_bus_observers_and_leases() -> None:
    bus = MemoryBus(observer_queue_max=2)
    chat_id, fanout, inbox = new_id(), Fanout(), Inbox()
    await bus.register(chat_id, inbox, Presence(account_id="a", allow_connection=True, outbound=fanout))
    assert await bus.publish(chat_id, {"type": "user_input"}) and inbox.messages == [{"type": "user_input"}]
    located = await bus.locate(chat_id)
    assert located is not None and located.allow_connection
    assert await bus.instances_alive(["x"]) is None  # one process: it cannot tell, so sweepers stay idle
    async with bus.observe(chat_id) as stream:
        fanout.send(msg.UserInterruption(time_ms=1))
        fanout.close()
        async with asyncio.timeout(5):
            assert await stream.get() == {"type": "user_interruption", "time": 1}
            assert await stream.get() == StreamEnd(1000, "")
    await bus.unregister(chat_id)
    assert await bus.locate(chat_id) is None and not await bus.publish(chat_id, {})
