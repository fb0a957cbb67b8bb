"""The bus across instances, on Redis: a directory of live chats, control messages and observer streams.

Keys and channels (all under `openevi:`):
- `instance:{id}` — the instance's lease; `chat:{id}` — the directory entry of a live chat (its home
  instance, account and allow_connection). Both carry a TTL the home instance refreshes every
  heartbeat, so a dead instance's entries vanish within one lease.
- `inbox:{instance}` — control messages for that instance's chats, and acknowledgements back to the
  sender. A send is fire-and-forget with an ack: the home acks once the message is queued, in order,
  for the chat's session; no ack within `ack_timeout_s` means the chat is not live (404).
- `out:{chat}` — every outbound message of a chat started with allow_connection, for observer
  sockets on any instance; the last one carries the close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from openevi.bus.base import Handler, LiveChat, Observed, OutboundQueue, Presence, StreamEnd

log = logging.getLogger("openevi.bus.redis")

PREFIX = "openevi:"
_SEND, _ACK = "send", "ack"
# Dead-owner checks of an observer stream: consecutive heartbeats without a directory entry. More
# than one, so that a chat that just ended closes with its own code (its last message) instead.
_OBSERVER_MISSES = 2


def instance_key(instance_id: str) -> str:
    return f"{PREFIX}instance:{instance_id}"


def chat_key(chat_id: str) -> str:
    return f"{PREFIX}chat:{chat_id}"


def inbox_channel(instance_id: str) -> str:
    return f"{PREFIX}inbox:{instance_id}"


def outbound_channel(chat_id: str) -> str:
    return f"{PREFIX}out:{chat_id}"


@dataclass
class _Home:
    """A chat that lives on this instance."""

    handler: Handler
    presence: Presence | None
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def entry(self, instance_id: str) -> str:
        presence = self.presence
        return json.dumps(
            {
                "instance": instance_id,
                "account_id": presence.account_id if presence else "",
                "allow_connection": bool(presence and presence.allow_connection),
            }
        )


class RedisBus:
    """ChatBus shared by every instance connected to one Redis."""

    def __init__(
        self,
        url: str,
        *,
        instance_id: str,
        lease_s: float = 15.0,
        heartbeat_s: float = 5.0,
        ack_timeout_s: float = 2.0,
        observer_queue_max: int = 512,
    ) -> None:
        self.instance_id = instance_id
        self._lease_ms = max(1, int(lease_s * 1000))
        self._heartbeat_s = heartbeat_s
        self._ack_timeout_s = ack_timeout_s
        self._observer_max = observer_queue_max
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._homes: dict[str, _Home] = {}
        self._acks: dict[str, asyncio.Future[bool]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inbox_ready = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, take the instance lease and listen to this instance's inbox."""
        await self._redis.set(instance_key(self.instance_id), "1", px=self._lease_ms)
        self._tasks = [
            asyncio.create_task(self._listen(), name="bus-inbox"),
            asyncio.create_task(self._heartbeat(), name="bus-heartbeat"),
        ]
        await self._inbox_ready.wait()

    async def check(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        keys = [instance_key(self.instance_id), *(chat_key(c) for c in self._homes)]
        homes = list(self._homes.values())
        self._homes.clear()
        for home in homes:
            for task in home.tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, *(t for h in homes for t in h.tasks), return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(*keys)
        await self._redis.aclose()

    # --- the home side ----------------------------------------------------------------------

    async def register(self, chat_id: str, handler: Handler, presence: Presence | None = None) -> None:
        home = _Home(handler, presence)
        self._homes[chat_id] = home
        home.tasks.append(asyncio.create_task(self._deliver(chat_id, home), name=f"bus-deliver-{chat_id}"))
        if presence is not None and presence.allow_connection:
            source = presence.outbound.subscribe()
            home.tasks.append(
                asyncio.create_task(self._broadcast(chat_id, presence, source), name=f"bus-out-{chat_id}")
            )
        await self._redis.set(chat_key(chat_id), home.entry(self.instance_id), px=self._lease_ms)

    async def unregister(self, chat_id: str) -> None:
        home = self._homes.pop(chat_id, None)
        if home is None:
            return
        # The broadcast task keeps running: it ends on the stream's None, after the chat's last message.
        # The delivery task may be the one ending the chat (a control message did): it then stops itself.
        if home.tasks[0] is not asyncio.current_task():
            home.tasks[0].cancel()
        try:
            await self._redis.delete(chat_key(chat_id))
        except (RedisError, OSError):
            log.warning("could not remove chat %s from the directory (its lease will expire)", chat_id)

    async def _deliver(self, chat_id: str, home: _Home) -> None:
        """Hand remote messages to the chat one at a time, in the order they arrived."""
        while self._homes.get(chat_id) is home:
            message = await home.inbox.get()
            try:
                await home.handler(message)
            except Exception:
                log.exception("chat %s: control message failed", chat_id)

    async def _broadcast(self, chat_id: str, presence: Presence, source: OutboundQueue) -> None:
        """Publish the chat's outbound stream for observers on other instances (batched per wakeup)."""
        channel = outbound_channel(chat_id)
        try:
            ended = False
            while not ended:
                batch = [await source.get()]
                while not source.empty() and len(batch) < 64:
                    batch.append(source.get_nowait())
                pipe = self._redis.pipeline(transaction=False)
                for item in batch:
                    if item is None:
                        code, reason = presence.closing()
                        pipe.publish(channel, json.dumps({"end": [code, reason]}))
                        ended = True
                        break
                    pipe.publish(channel, json.dumps({"m": item.to_dict()}, separators=(",", ":")))
                try:
                    await pipe.execute()
                except (RedisError, OSError):
                    log.warning("chat %s: could not publish to observers", chat_id)
        finally:
            presence.outbound.unsubscribe(source)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.set(instance_key(self.instance_id), "1", px=self._lease_ms)
                for chat_id, home in list(self._homes.items()):
                    pipe.set(chat_key(chat_id), home.entry(self.instance_id), px=self._lease_ms)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("lease heartbeat failed: %s", exc)

    async def _listen(self) -> None:
        """This instance's inbox: sends for its chats, acks for its own sends. Reconnects on errors."""
        while True:
            pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(inbox_channel(self.instance_id))
                self._inbox_ready.set()
                while True:
                    raw = await pubsub.get_message(timeout=self._heartbeat_s)
                    if raw is not None and raw.get("type") == "message":
                        await self._on_inbox(raw["data"])
            except (RedisError, OSError) as exc:
                log.warning("bus inbox connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _on_inbox(self, data: str) -> None:
        try:
            envelope = json.loads(data)
        except ValueError:
            return
        kind = envelope.get("kind")
        if kind == _ACK:
            future = self._acks.get(envelope.get("id", ""))
            if future is not None and not future.done():
                future.set_result(bool(envelope.get("ok")))
        elif kind == _SEND:
            home = self._homes.get(envelope.get("chat_id", ""))
            if home is not None:
                home.inbox.put_nowait(envelope.get("message") or {})
            reply = {"kind": _ACK, "id": envelope.get("id"), "ok": home is not None}
            with contextlib.suppress(RedisError, OSError):
                await self._redis.publish(inbox_channel(str(envelope.get("reply"))), json.dumps(reply))

    # --- any instance -----------------------------------------------------------------------

    async def publish(self, chat_id: str, message: dict[str, Any]) -> bool:
        home = self._homes.get(chat_id)
        if home is not None:
            await home.handler(message)
            return True
        live = await self.locate(chat_id)
        if live is None or live.instance_id == self.instance_id:
            return False
        message_id = secrets.token_hex(8)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks[message_id] = future
        envelope = {"kind": _SEND, "id": message_id, "reply": self.instance_id, "chat_id": chat_id, "message": message}
        try:
            if not await self._redis.publish(inbox_channel(live.instance_id), json.dumps(envelope)):
                return False  # nobody listens on that inbox: the home instance is gone
            async with asyncio.timeout(self._ack_timeout_s):
                return await future
        except TimeoutError:
            return False
        finally:
            self._acks.pop(message_id, None)

    async def locate(self, chat_id: str) -> LiveChat | None:
        home = self._homes.get(chat_id)
        if home is not None:
            presence = home.presence
            return LiveChat(
                chat_id,
                self.instance_id,
                presence.account_id if presence else "",
                bool(presence and presence.allow_connection),
            )
        raw = await self._redis.get(chat_key(chat_id))
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            return LiveChat(chat_id, str(entry["instance"]), str(entry["account_id"]), bool(entry["allow_connection"]))
        except (ValueError, KeyError, TypeError):
            return None

    @contextlib.asynccontextmanager
    async def observe(self, chat_id: str) -> AsyncIterator[asyncio.Queue[Observed]]:
        # One slot beyond the limit for the StreamEnd that cuts a slow observer off.
        queue: asyncio.Queue[Observed] = asyncio.Queue(maxsize=self._observer_max + 1)
        pubsub: Any = self._redis.pubsub()
        await pubsub.subscribe(outbound_channel(chat_id))
        # Wait until Redis confirms: messages the chat sends after this are all seen.
        async with asyncio.timeout(max(self._ack_timeout_s, 5.0)):
            while (confirmed := await pubsub.get_message(timeout=1.0)) is None or confirmed["type"] != "subscribe":
                pass
        relay = asyncio.create_task(self._relay(chat_id, pubsub, queue), name=f"bus-observe-{chat_id}")
        try:
            yield queue
        finally:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _relay(self, chat_id: str, pubsub: Any, queue: asyncio.Queue[Observed]) -> None:
        misses = 0
        try:
            while True:
                raw = await pubsub.get_message(timeout=self._heartbeat_s)
                if raw is None:
                    # Quiet: is the chat still live somewhere? (its home may have died without a last word)
                    misses = 0 if await self._redis.exists(chat_key(chat_id)) else misses + 1
                    if misses >= _OBSERVER_MISSES:
                        queue.put_nowait(StreamEnd(1011, "chat is no longer live"))
                        return
                    continue
                if raw.get("type") != "message":
                    continue
                envelope = json.loads(raw["data"])
                if "end" in envelope:
                    code, reason = envelope["end"]
                    queue.put_nowait(StreamEnd(int(code), str(reason)))
                    return
                if queue.qsize() >= self._observer_max:
                    queue.put_nowait(StreamEnd(1013, "observer too slow"))
                    return
                queue.put_nowait(envelope["m"])
        except (RedisError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("chat %s: observer stream failed: %s", chat_id, exc)
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(StreamEnd(1011, "observer stream failed"))

    async def instances_alive(self, instance_ids: Collection[str]) -> set[str] | None:
        ids = list(instance_ids)
        if not ids:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for instance_id in ids:
            pipe.exists(instance_key(instance_id))
        found = await pipe.execute()
        return {instance_id for instance_id, exists in zip(ids, found, strict=True) if exists}
