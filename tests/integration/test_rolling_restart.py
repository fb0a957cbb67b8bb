"""A rolling restart of two instances behind a load balancer, with voice chats in flight: none is lost.

The balancer is a small TCP proxy on 127.0.0.1 that, like a Kubernetes Service or an ALB, sends new
connections only to instances whose `/readyz` answers 200. Each instance in turn gets SIGTERM, drains
(its live chats go on; new ones go to the other instance) and is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import SessionSettings, UserInput
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.integration.chat_support import client_for, recv_until, scripted_server
from tests.integration.live_support import make_config, start_receiver, wait_until, webhook_bodies
from tests.integration.test_voice import RATE, linear16, silence, speak, stream
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM
from tests.support.twilio_client import PhoneCall, TwimlAnswer
from tests.webhook_receiver import Receiver

DRAIN_TIMEOUT_S = 30  # long enough for every chat to be answered once more while its instance drains
RESTART_CLOSE_CODE = 1012


class Balancer:
    """Round-robin TCP proxy over the backends whose /readyz is 200 (checked every 100 ms)."""

    def __init__(self, backends: list[ServerProcess]) -> None:
        self.backends = backends
        self.ready: set[int] = set()
        self.port = 0
        self._turn = 0
        self._server: asyncio.Server | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watcher = asyncio.create_task(self._watch())
        await self.until(lambda ready: len(ready) == len(self.backends))

    async def stop(self) -> None:
        assert self._server is not None and self._watcher is not None
        self._watcher.cancel()
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(self._watcher, *self._pipes, return_exceptions=True)

    async def until(self, check: Callable[[set[int]], bool]) -> None:
        await wait_until(lambda: check(set(self.ready)), "the balancer's view of the instances", limit_s=60)

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                for backend in self.backends:
                    try:
                        ok = (await http.get(f"{backend.base_url}/readyz")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    (self.ready.add if ok else self.ready.discard)(backend.port)
                await asyncio.sleep(0.1)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        ports = [b.port for b in self.backends if b.port in self.ready]
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for i in range(len(ports)):
            port = ports[(self._turn + i) % len(ports)]
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
        self._turn += 1
        if upstream is None:
            client_writer.close()
            return
        server_reader, server_writer = upstream
        pipes = [
            asyncio.create_task(_pipe(client_reader, server_writer)),
            asyncio.create_task(_pipe(server_reader, client_writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@dataclass
class Caller:
    """One voice chat through the balancer: a spoken turn at a time until told to finish, or cut off."""

    name: str
    finish: asyncio.Event
    chat_id: str = ""
    answered: int = 0
    close_code: int | None = None
    turns: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def converse(self, client: AsyncHumeClient, config_id: str, utterance: bytes) -> None:
        async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
            self.chat_id = (await socket.recv()).chat_id
            await socket.send_publish(
                SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1})
            )
            try:
                while not self.finish.is_set():
                    speech = stream(socket, utterance, chunk_bytes=RATE // 10, seconds_per_chunk=0.05)
                    sender = asyncio.create_task(speech)
                    await recv_until(socket, "assistant_end", limit_s=90)
                    await sender
                    self.answered += 1
                    self.turns.put_nowait(self.answered)
                self.close_code = 1000  # the caller hung up
            except ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd else None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks = start_receiver()
    yield hooks
    hooks.stop()


def _instances(root: Path, llm: ScriptedLLM) -> tuple[ServerProcess, ServerProcess]:
    a = scripted_server(root / "a", llm, OPENEVI_DRAIN_TIMEOUT_S=str(DRAIN_TIMEOUT_S))
    # PostgreSQL (a fresh database) when the tests have one, else one SQLite file (WAL) for both.
    a.database_url = a.database_url or f"sqlite+aiosqlite:///{root / 'shared.db'}"
    b = ServerProcess(
        data_dir=root / "b",
        api_key=a.api_key,
        secret_key=a.secret_key,
        database_url=a.database_url,
        extra_env=dict(a.extra_env),
    )
    return a, b


async def _drain(server: ServerProcess, balancer: Balancer) -> None:
    """SIGTERM: the instance leaves the balancer's rotation and refuses new chats and calls, retryably."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    await balancer.until(lambda ready: server.port not in ready)
    async with httpx.AsyncClient(timeout=10) as http:
        ready = await http.get(f"{server.base_url}/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        call = await http.post(
            f"{server.base_url}/v0/evi/twilio",
            params={"api_key": server.api_key},
            data={"CallSid": "CA" + "0" * 32, "From": "+15550100"},
        )
        assert call.status_code == 503  # Twilio then tries the number's fallback URL
    with pytest.raises(ApiError) as refused:
        async with client_for(server).empathic_voice.chat.connect():
            pass
    assert refused.value.status_code == 503


async def _exited_and_restarted(server: ServerProcess, balancer: Balancer) -> None:
    assert server.proc is not None
    exit_code = await asyncio.to_thread(server.proc.wait, DRAIN_TIMEOUT_S + 60)
    assert exit_code in (0, -signal.SIGTERM), exit_code
    server.proc = None
    await asyncio.to_thread(server.start, 180)
    await balancer.until(lambda ready: server.port in ready)


async def _stay_on_the_line(phone: PhoneCall, answer: TwimlAnswer) -> int | None:
    """The caller stays on (silence) until the server ends the call; returns the stream's close code."""
    async with phone.stream(answer) as line:
        await line.keep_talking_silence(seconds=DRAIN_TIMEOUT_S + 60)
        await asyncio.wait_for(line.closed.wait(), 30)
        return line.close_code


async def _live_chats(server: ServerProcess) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{server.base_url}/metrics")).text
    families = text_string_to_metric_families(text)
    return sum(s.value for f in families for s in f.samples if s.name == "openevi_chats_active")


async def test_a_rolling_restart_loses_no_chat(tmp_path: Path, llm: ScriptedLLM, receiver: Receiver) -> None:
    a, b = await asyncio.to_thread(_instances, tmp_path, llm)  # makes a PostgreSQL database when testing on one
    balancer = Balancer([a, b])
    finishers, stayers = asyncio.Event(), asyncio.Event()
    callers = [Caller(name, until) for name, until in (("finisher-a", finishers), ("finisher-b", finishers))]
    callers += [Caller(name, stayers) for name in ("stayer-a", "stayer-b", "newcomer")]
    talks: list[asyncio.Task[Any]] = []
    try:
        await asyncio.to_thread(a.start, 180)  # one at a time: the first one migrates the database
        await asyncio.to_thread(b.start, 180)
        await balancer.start()
        hooks = [{"url": receiver.url("/rolling"), "events": ["chat_started", "chat_ended"]}]
        config_id = await make_config(a, webhooks=hooks)
        through_balancer = AsyncHumeClient(api_key=a.api_key, base_url=balancer.url)
        utterance = linear16(np.concatenate([speak("Hello, can you hear me"), silence(1.2)]))

        def call(caller: Caller) -> None:
            talks.append(asyncio.create_task(caller.converse(through_balancer, config_id, utterance)))

        # Opened one by one, so the round robin puts a finisher and a stayer on each instance.
        for caller in callers[:4]:
            call(caller)
            await asyncio.wait_for(caller.turns.get(), 90)  # its first turn answered
        assert (await _live_chats(a), await _live_chats(b)) == (2, 2)
        # A phone call to a: answered (TwiML) now, its media stream connects once a is draining.
        query = httpx.QueryParams({"config_id": config_id, "api_key": a.api_key})
        phone = PhoneCall(a.base_url, f"/v0/evi/twilio?{query}")
        answer = await asyncio.to_thread(phone.dial)
        assert answer.stream_url is not None, answer.body

        # a drains: its chats go on (a turn each), a new chat goes to b; the finisher on a hangs up,
        # the stayer on a is ended at the drain timeout.
        await _drain(a, balancer)
        on_the_phone = asyncio.create_task(_stay_on_the_line(phone, answer))
        talks.append(on_the_phone)
        call(callers[4])
        await asyncio.wait_for(callers[4].turns.get(), 90)
        for caller in callers[:4]:
            await asyncio.wait_for(caller.turns.get(), 90)
        finishers.set()
        await _exited_and_restarted(a, balancer)

        # b drains: its two chats outlive the timeout and are ended cleanly.
        await _drain(b, balancer)
        await _exited_and_restarted(b, balancer)
        await asyncio.wait_for(asyncio.gather(*talks), 60)
        assert on_the_phone.result() == 1000  # the server ended the stream, and with it the call

        closes = {c.name: c.close_code for c in callers}
        assert closes == {
            "finisher-a": 1000,
            "finisher-b": 1000,
            "stayer-a": RESTART_CLOSE_CODE,  # "service restart": a clean close, reconnect at once
            "stayer-b": RESTART_CLOSE_CODE,
            "newcomer": RESTART_CLOSE_CODE,
        }
        assert all(c.answered >= 2 for c in callers[:4]) and callers[4].answered >= 1
        # Every chat, the phone call's too, is stored as ended, and both its webhooks were sent.
        started = [
            body
            for body in (json.loads(r.body) for r in receiver.received())
            if body.get("event_name") == "chat_started"
        ]
        (phone_chat,) = [b["chat_id"] for b in started if b.get("caller_number") == phone.caller]
        callers.append(Caller("phone", stayers, chat_id=phone_chat))
        stored = [chat.id async for chat in await through_balancer.empathic_voice.chats.list_chats(page_size=100)]
        assert sorted(stored) == sorted(c.chat_id for c in callers)  # none lost, none doubled
        for caller in callers:
            chat = await through_balancer.empathic_voice.chats.list_chat_events(id=caller.chat_id)
            assert chat.response.status == "USER_ENDED", (caller.name, chat.response.status)
        await wait_until(
            lambda: all(
                webhook_bodies(receiver, "chat_started", c.chat_id)
                and webhook_bodies(receiver, "chat_ended", c.chat_id)
                for c in callers
            ),
            "both webhooks of every chat",
            limit_s=60,
        )
    finally:
        stayers.set()
        for talk in talks:
            talk.cancel()
        await asyncio.gather(*talks, return_exceptions=True)
        if balancer.port:
            await balancer.stop()
        for server in (a, b):
            await asyncio.to_thread(server.stop)


async def test_with_workers_every_worker_drains(tmp_path: Path, llm: ScriptedLLM) -> None:
    server = await asyncio.to_thread(scripted_server, tmp_path / "workers", llm, OPENEVI_DRAIN_TIMEOUT_S="20")
    server.serve_args = ("--workers", "2")
    await asyncio.to_thread(server.start, 180)
    try:
        client = client_for(server)
        async with client.empathic_voice.chat.connect() as socket:
            chat_id = (await socket.recv()).chat_id
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)  # to uvicorn's parent, which passes it to each worker
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(300):  # the parent passes signals on within about half a second
                    if (await http.get(f"{server.base_url}/readyz")).status_code == 503:
                        break
                    await asyncio.sleep(0.1)
            readiness = set()
            for _ in range(8):  # a connection each, so that both workers answer some
                async with httpx.AsyncClient(timeout=10) as http:
                    readiness.add((await http.get(f"{server.base_url}/readyz")).status_code)
            assert readiness == {503}
            await socket.send_publish(UserInput(text="Still there?"))
            answer = await recv_until(socket, "assistant_end", limit_s=60)  # the live chat goes on
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await socket.recv()
        assert [m.type for m in answer].count("assistant_message") >= 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == RESTART_CLOSE_CODE
        assert await asyncio.to_thread(server.proc.wait, 60) == 0
        server.proc = None
        await asyncio.to_thread(server.start, 180)
        chat = await client.empathic_voice.chats.list_chat_events(id=chat_id)
        assert chat.response.status == "USER_ENDED"
    finally:
        await asyncio.to_thread(server.stop)
