"""Several openevi processes on one database and one Redis: live chats are reachable from any of them.

Instances A and B (and C, killed mid-chat) share a database (one SQLite file in WAL mode, or a
PostgreSQL database when OPENEVI_TEST_POSTGRES_URL is set) and a redis-server. A chat held by one is
driven through another's control plane and observed through another's `/chat/{id}/connect`; when
an instance dies, a survivor closes its chats as ERROR once its lease runs out; webhooks go out once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from hume.core.api_error import ApiError
from hume.empathic_voice import AssistantInput, UserInput
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from openevi.store.models import Chat, WebhookDelivery
from tests.integration.chat_support import (
    client_for,
    connect_once_admitted,
    of_type,
    recv_until,
    scripted_server,
    wait_chat_ended,
)
from tests.integration.live_support import (
    WAIT_S,
    join,
    make_config,
    recv_raw_until,
    start_receiver,
    wait_until,
    wait_webhook,
)
from tests.integration.support import store
from tests.server import ServerProcess
from tests.support.redis_server import RedisServer, redis_server
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.webhook_receiver import Receiver

__all__ = ["redis_server"]  # fixtures

EVENTS = ["chat_started", "chat_ended"]
# Short leases so that a dead instance is noticed quickly (the defaults are 15 s and 5 s), and a
# concurrent-chats quota small enough to reach with one chat per instance.
LEASES = {
    "OPENEVI_INSTANCE_LEASE_S": "2",
    "OPENEVI_INSTANCE_HEARTBEAT_S": "0.5",
    "OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS": "3",
}


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    database_url: str
    redis_url: str
    receiver: Receiver
    config_id: str = ""

    def instance(self, data_dir: Path) -> ServerProcess:
        """Another instance of the cluster (same key, settings, database and Redis)."""
        return ServerProcess(
            data_dir=data_dir,
            api_key=self.a.api_key,
            secret_key=self.a.secret_key,
            database_url=self.database_url,
            extra_env=dict(self.a.extra_env),
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, redis_server: RedisServer) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("cluster"))
    receiver = start_receiver()
    first = scripted_server(root / "a", llm, OPENEVI_REDIS_URL=redis_server.url, **LEASES)
    # PostgreSQL (a fresh database) when the tests have one, else one SQLite file (WAL) for all.
    first.database_url = first.database_url or f"sqlite+aiosqlite:///{root / 'shared.db'}"
    cluster = Cluster(first, first, first.database_url, redis_server.url, receiver)
    cluster.b = cluster.instance(root / "b")
    servers: list[ServerProcess] = []
    try:
        for server in (cluster.a, cluster.b):  # one at a time: the first one migrates the database
            server.start()
            servers.append(server)
        cluster.config_id = asyncio.run(
            make_config(cluster.a, webhooks=[{"url": receiver.url("/cluster"), "events": EVENTS}])
        )
        yield cluster
    finally:
        for server in servers:
            server.stop()
        receiver.stop()


async def test_a_chat_on_one_instance_is_driven_and_observed_through_another(
    cluster: Cluster, llm: ScriptedLLM
) -> None:
    llm.script(
        Reply("Backend said hi.", when="from the backend"),
        Reply("Observer heard.", when="observer speaking"),
    )
    control_b = client_for(cluster.b).empathic_voice.control_plane
    async with client_for(cluster.a).empathic_voice.chat.connect(
        config_id=cluster.config_id, allow_connection=True
    ) as socket:
        chat_id = (await socket.recv()).chat_id
        async with join(cluster.b, chat_id) as observer:
            await control_b.send(chat_id=chat_id, request=UserInput(text="hello from the backend"))
            owner_view = await recv_until(socket, "assistant_end")
            assert [m.message.content for m in of_type(owner_view, "user_message")] == ["hello from the backend"]
            assert [m.message.content for m in of_type(owner_view, "assistant_message")] == ["Backend said hi."]
            observed = await recv_raw_until(observer, "assistant_end")
            assert [m["message"]["content"] for m in observed if m["type"] == "user_message"] == [
                "hello from the backend"
            ]
            assert [m["message"]["content"] for m in observed if m["type"] == "assistant_message"] == [
                "Backend said hi."
            ]

            await control_b.send(chat_id=chat_id, request=AssistantInput(text="Spoken for the backend."))
            owner_view = await recv_until(socket, "assistant_end")
            assert [m.message.content for m in of_type(owner_view, "assistant_message")] == ["Spoken for the backend."]
            observed = await recv_raw_until(observer, "assistant_end")
            assert "audio_output" in [m["type"] for m in observed]

            # The observer on B talks for the user; the chat on A answers, both sockets see it.
            await observer.send(json.dumps({"type": "user_input", "text": "observer speaking"}))
            owner_view = await recv_until(socket, "assistant_end")
            assert [m.message.content for m in of_type(owner_view, "user_message")] == ["observer speaking"]
            assert [m.message.content for m in of_type(owner_view, "assistant_message")] == ["Observer heard."]
            observed = await recv_raw_until(observer, "assistant_end")
            assert [m["message"]["content"] for m in observed if m["type"] == "assistant_message"] == [
                "Observer heard."
            ]

            # ...but may not send audio (only the observer is told).
            audio = base64.b64encode(b"\x00\x00" * 160).decode()
            await observer.send(json.dumps({"type": "audio_input", "data": audio}))
            error = (await recv_raw_until(observer, "error"))[-1]
            assert error["slug"] == "audio_not_allowed"

        async with join(cluster.b, chat_id) as observer:
            await socket._websocket.close()  # the chat ends on A: B's observer is closed too
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(WAIT_S):
                    while True:
                        await observer.recv()

    chat = await wait_chat_ended(client_for(cluster.b), chat_id, limit_s=WAIT_S)
    assert chat.status == "USER_ENDED"
    with pytest.raises(ApiError) as ended:
        await control_b.send(chat_id=chat_id, request=UserInput(text="too late"))
    assert ended.value.status_code == 404


async def test_send_to_a_chat_live_nowhere_is_404(cluster: Cluster) -> None:
    control_b = client_for(cluster.b).empathic_voice.control_plane
    with pytest.raises(ApiError) as unknown:
        await control_b.send(chat_id="00000000-0000-4000-8000-000000000000", request=UserInput(text="nobody"))
    assert unknown.value.status_code == 404


async def test_a_killed_instance_s_chats_are_closed_by_a_survivor(cluster: Cluster, tmp_path: Path) -> None:
    doomed = cluster.instance(tmp_path / "c")
    await asyncio.to_thread(doomed.start)
    try:
        async with client_for(doomed).empathic_voice.chat.connect(
            config_id=cluster.config_id, allow_connection=True
        ) as socket:
            chat_id = (await socket.recv()).chat_id
            await wait_webhook(cluster.receiver, "chat_started", chat_id)
            # Killed between the receiver's answer and its record of it, C would leave a delivery to be
            # sent again (at least once, docs/webhooks.md), and the next test counts duplicates.
            await wait_until_no_delivery_pending(cluster)
            async with join(cluster.b, chat_id) as observer:
                doomed.kill()  # SIGKILL: no goodbye, no cleanup; its lease runs out
                with pytest.raises(ConnectionClosed) as cut:
                    async with asyncio.timeout(WAIT_S):
                        while True:
                            await observer.recv()
                assert cut.value.rcvd is not None and cut.value.rcvd.code == 1011

            # Nothing holds the chat any more: the control plane says so before the chat is closed, too.
            with pytest.raises(ApiError) as gone:
                await client_for(cluster.b).empathic_voice.control_plane.send(
                    chat_id=chat_id, request=UserInput(text="anyone?")
                )
            assert gone.value.status_code == 404
    except (ConnectionClosed, OSError):
        pass  # the client socket's own close fails: its server is gone
    finally:
        doomed.kill()

    _, ended = await wait_webhook(cluster.receiver, "chat_ended", chat_id)
    assert ended["end_reason"] == "ERROR"
    chat = await wait_chat_ended(client_for(cluster.a), chat_id, limit_s=WAIT_S)
    assert chat.status == "ERROR"


async def test_the_concurrent_chats_quota_counts_every_instance(cluster: Cluster) -> None:
    a, b = client_for(cluster.a).empathic_voice.chat, client_for(cluster.b).empathic_voice.chat
    async with (
        a.connect(config_id=cluster.config_id) as first,
        b.connect(config_id=cluster.config_id) as second,
        a.connect(config_id=cluster.config_id) as third,
    ):
        for socket in (first, second, third):
            assert (await socket.recv()).type == "chat_metadata"
        # B holds one of the three itself; the two on A count as well.
        with pytest.raises(ApiError) as refused:
            async with b.connect(config_id=cluster.config_id):
                pass
        assert refused.value.status_code == 429
    # The chats end as their sockets close; then B admits again.
    await connect_once_admitted(lambda: b.connect(config_id=cluster.config_id), 429, poll_s=0.2, limit_s=WAIT_S)


async def test_webhooks_go_out_once_across_instances(cluster: Cluster) -> None:
    # Two more chats, one on each instance, so both dispatchers have had work.
    chat_ids = []
    for server in (cluster.a, cluster.b):
        async with client_for(server).empathic_voice.chat.connect(config_id=cluster.config_id) as socket:
            chat_ids.append((await socket.recv()).chat_id)

    def seen() -> list[tuple[str, str]]:
        bodies = [json.loads(r.body) for r in cluster.receiver.received("/cluster")]
        return [(b["event_name"], b["chat_id"]) for b in bodies]

    def every_chat_has_both_events() -> bool:
        events = seen()
        chats = {chat_id for _, chat_id in events} | set(chat_ids)
        return all({e for e, c in events if c == chat_id} == set(EVENTS) for chat_id in chats)

    # Deliveries are concurrent and unordered (docs/webhooks.md): a chat's `chat_ended` may land before
    # its `chat_started`, so wait until every chat has both, then check nothing came twice.
    await wait_until(every_chat_has_both_events, "chat_started and chat_ended for every chat")
    events = seen()
    assert len(events) == len(set(events)), sorted(events)
    assert set(chat_ids) <= {chat_id for _, chat_id in events}  # and those of the earlier tests


async def wait_until_no_delivery_pending(cluster: Cluster) -> None:
    """Every webhook delivery so far is recorded as done (none is claimed or due again)."""

    async def pending() -> int:
        async with store(cluster.a) as session:
            rows = await session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.status == "PENDING"))
            return len(rows.all())

    async with asyncio.timeout(WAIT_S):
        while True:
            if not await pending():
                return
            await asyncio.sleep(0.05)


async def test_serve_with_workers_reaches_every_live_chat(
    tmp_path: Path, llm: ScriptedLLM, redis_server: RedisServer
) -> None:
    """`openevi serve --workers 2`: two instances on one port; a send reaches a chat whichever worker takes it."""
    # (in a thread: making a PostgreSQL database runs an event loop of its own)
    server = await asyncio.to_thread(
        scripted_server, tmp_path / "workers", llm, OPENEVI_REDIS_URL=workers_redis_url(redis_server), **LEASES
    )
    proc = _spawn_workers(server, 2)
    try:
        await _drive_workers(server, proc)
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spawn_workers(server: ServerProcess, workers: int) -> subprocess.Popen[bytes]:
    server.data_dir.mkdir(parents=True)
    with server.log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "openevi.cli", "serve", "--port", str(server.port), "--workers", str(workers)],
            env=server.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def workers_redis_url(redis_server: RedisServer) -> str:
    """A Redis database of its own, so that its instance leases are only those of the workers."""
    return redis_server.url.rsplit("/", 1)[0] + "/1"


async def _drive_workers(server: ServerProcess, proc: subprocess.Popen[bytes]) -> None:
    leases = aioredis.Redis.from_url(server.extra_env["OPENEVI_REDIS_URL"])
    try:
        async with asyncio.timeout(120):
            while len(await leases.keys("openevi:instance:*")) < 2:  # both workers are up
                assert proc.poll() is None, server.log_path.read_text()
                await asyncio.sleep(0.2)
    finally:
        await leases.aclose()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as http:
        async with asyncio.timeout(120):
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
    async with contextlib.AsyncExitStack() as stack:
        # Chats until two of them live on different workers (the kernel hands each new connection to
        # one of them); the others are closed at once.
        sockets: dict[str, object] = {}
        homes: dict[str, str] = {}
        for _ in range(100):
            connection = client_for(server).empathic_voice.chat.connect()
            socket = await connection.__aenter__()
            chat_id = (await socket.recv()).chat_id
            home = await _home_of(server, chat_id)
            if home in homes.values():
                await connection.__aexit__(None, None, None)
                continue
            stack.push_async_exit(connection)
            sockets[chat_id], homes[chat_id] = socket, home
            if len(homes) == 2:
                break
        assert len(set(homes.values())) == 2, "every chat landed on one worker"
        headers = {"X-Hume-Api-Key": server.api_key}
        for chat_id in [next(c for c, h in homes.items() if h == home) for home in set(homes.values())]:
            words = [f"w{i}-{secrets.token_hex(2)}" for i in range(6)]
            for word in words:
                # A new connection per request, so that they are spread over both workers too.
                async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0, headers=headers) as fresh:
                    response = await fresh.post(
                        f"/v0/evi/chat/{chat_id}/send", json={"type": "assistant_input", "text": word}
                    )
                assert response.status_code == 200, response.text
            socket = sockets[chat_id]
            said: list[str] = []
            async with asyncio.timeout(WAIT_S):
                while len(said) < len(words):
                    message = await socket.recv()  # type: ignore[attr-defined]
                    if message.type == "assistant_message":
                        said.append(message.message.content)
            assert said == words


async def _home_of(server: ServerProcess, chat_id: str) -> str:
    async with store(server) as session:
        chat = await session.get(Chat, chat_id)
        assert chat is not None and chat.instance_id
        return chat.instance_id
