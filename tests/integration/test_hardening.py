"""Smaller defects that let one client hurt the server: deeply nested JSON (chat and REST), slow
request headers, file handles per chat, and running out of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import UserInput

from tests.integration.chat_support import connect_once_admitted, recv_until, scripted_server
from tests.integration.support import assert_validation_error, unique
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM

TEXT_ONLY = {"OPENEVI_ASR_PROVIDER": "none", "OPENEVI_VAD_PROVIDER": "none", "OPENEVI_PROSODY_PROVIDER": "none"}


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("hardening")), llm, OPENEVI_HTTP_HEADER_TIMEOUT_S="1", **TEXT_ONLY
    )
    proc.start()
    yield proc
    proc.stop()


def client_of(server: ServerProcess) -> AsyncHumeClient:
    return AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)


async def test_a_deeply_nested_frame_gets_an_error_and_the_chat_goes_on(hardened: ServerProcess) -> None:
    async with client_of(hardened).empathic_voice.chat.connect() as chat:
        chat_id = (await chat.recv()).chat_id
        await chat._websocket.send("[" * 100_000)  # raw frame: the SDK only sends valid messages
        error = (await recv_until(chat, "error"))[-1]
        assert (error.code, error.slug) == ("E0101", "invalid_message") and "deep" in error.message
        await chat.send_publish(UserInput(text="still there?"))
        answer = await recv_until(chat, "assistant_end")
    assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]
    page = await client_of(hardened).empathic_voice.chats.list_chat_events(id=chat_id)
    async with asyncio.timeout(30):  # bounds a hang only
        while page.response.status == "ACTIVE":
            await asyncio.sleep(0.05)
            page = await client_of(hardened).empathic_voice.chats.list_chat_events(id=chat_id)
    assert page.response.status == "USER_ENDED"


@pytest.mark.parametrize(
    "parameters",
    ["[" * 99_999, '{"type": "object", "properties": {"a": ' + '{"items": ' * 900 + "{}" + "}" * 900 + "}}"],
    ids=["deep-json", "deep-schema"],
)
def test_deeply_nested_tool_parameters_are_422_not_500(hardened: ServerProcess, parameters: str) -> None:
    response = httpx.post(
        f"{hardened.base_url}/v0/evi/tools",
        headers={"X-Hume-Api-Key": hardened.api_key},
        json={"name": unique("deep"), "parameters": parameters},
        timeout=30.0,
    )
    detail = assert_validation_error(response)
    assert any("nested too deeply" in item["msg"] for item in detail), detail


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_a_client_slow_to_send_its_headers_is_cut_off(hardened: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", hardened.port)) as slow:
        slow.settimeout(30)  # bounds a hang only: the server's deadline here is 1 s
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = read_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # A silent connection is cut off too; a prompt client is served.
    with socket.create_connection(("127.0.0.1", hardened.port)) as silent:
        silent.settimeout(30)
        assert read_until_closed(silent).startswith(b"HTTP/1.1 408")
    assert httpx.get(f"{hardened.base_url}/healthz", timeout=10).status_code == 200


def upgrade_request(*, path: str = "/v0/evi/chat", extra: bytes = b"") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    ).encode() + extra + b"\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade_request(path="/v0/evi/chat?x=" + "a" * 9000), b"414"),
        (upgrade_request(extra=b"X-Big: " + b"b" * 9000 + b"\r\n"), b"431"),
    ],
    ids=["long-request-line", "long-header"],
)
def test_an_oversized_upgrade_request_is_answered_and_closed(
    hardened: ServerProcess, request_bytes: bytes, status: bytes
) -> None:
    """The WebSocket parser refused these with 414/431 but never sent the answer nor closed: no key
    was needed to hold a file descriptor forever. Many at once are all answered and closed, and
    the server's descriptors go back to where they were."""
    before = open_files(hardened)
    sockets = [socket.create_connection(("127.0.0.1", hardened.port)) for _ in range(50)]
    try:
        for sock in sockets:
            sock.settimeout(30)  # bounds a hang only
            sock.sendall(request_bytes)
        answers = [read_until_closed(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert all(answer.startswith(b"HTTP/1.1 " + status) for answer in answers), answers[0][:200]
    assert open_files(hardened) <= before + 2
    assert httpx.get(f"{hardened.base_url}/healthz", timeout=10).status_code == 200


def open_files(server: ServerProcess) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


async def test_text_only_chats_hold_one_file_each(hardened: ServerProcess) -> None:
    client = client_of(hardened)
    async with contextlib.AsyncExitStack() as stack:
        # Warm up: busy chats grow the database pool to its usual size before counting.
        busy = [await stack.enter_async_context(client.empathic_voice.chat.connect()) for _ in range(5)]
        for chat in busy:
            await chat.recv()
            await chat.send_publish(UserInput(text="warm up"))
        await asyncio.gather(*(recv_until(chat, "assistant_end") for chat in busy))
        before = open_files(hardened)
        for _ in range(20):
            chat = await stack.enter_async_context(client.empathic_voice.chat.connect())
            assert (await chat.recv()).type == "chat_metadata"
        after = open_files(hardened)
    # One socket per idle chat (the recorder opens its files only when audio flows), plus slack.
    assert after - before <= 20 + 6, (before, after)


@pytest.fixture
def cramped(tmp_path: Path, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(tmp_path / "openevi", llm, OPENEVI_FD_RESERVE="48", **TEXT_ONLY)
    proc.max_open_files = 160
    proc.start()
    yield proc
    proc.stop()


async def raw_connect_status(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    url = server.base_url.replace("http", "ws", 1) + "/v0/evi/chat?api_key=" + server.api_key
    with pytest.raises(websockets.exceptions.InvalidStatus) as raw:
        async with websockets.connect(url):
            pass
    return raw.value.response.status_code, json.loads(raw.value.response.body)


async def test_at_the_open_file_limit_new_chats_are_refused_with_503(cramped: ServerProcess) -> None:
    client = client_of(cramped)
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        refusal: ApiError | None = None
        for _ in range(200):
            try:
                chat = await stack.enter_async_context(client.empathic_voice.chat.connect())
            except ApiError as exc:
                refusal = exc
                break
            assert (await chat.recv()).type == "chat_metadata"
            opened.append(chat)
        assert refusal is not None and refusal.status_code == 503, refusal
        assert len(opened) >= 10, len(opened)
        status, body = await raw_connect_status(cramped)
        assert status == 503 and body["code"] == "server_busy", body
        # The server still answers REST and the chats it has.
        async with httpx.AsyncClient(base_url=cramped.base_url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
        await opened[0].send_publish(UserInput(text="still fine?"))
        answer = await recv_until(opened[0], "assistant_end")
        assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]
        # Ending a few chats makes room again.
        await stack.aclose()
    await connect_once_admitted(client.empathic_voice.chat.connect, 503)


async def test_deeply_nested_variables_in_the_connect_url_are_a_400(hardened: ServerProcess) -> None:
    query = "session_settings%5Bvariables%5D=" + "%5B" * 2000
    url = hardened.base_url.replace("http", "ws", 1) + f"/v0/evi/chat?api_key={hardened.api_key}&{query}"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body)["code"] == "invalid_session_settings"


async def test_a_pause_resume_flood_stores_a_bounded_number_of_events_and_sigterm_still_stops(
    tmp_path: Path,
    llm: ScriptedLLM,
) -> None:
    """One socket toggling pause/resume as fast as it can used to queue hundreds of thousands of
    free events; the server then spent minutes writing them and ignored SIGTERM meanwhile. Now the
    socket is read at a bounded rate, the toggles past the chat's message rate are dropped (told
    once a second), and a socket that stays far ahead is closed."""
    # A frame rate this machine surely keeps up with, so the socket is held back by the limit itself.
    # Built off the event loop: with PostgreSQL it makes a fresh database (asyncio.run inside).
    proc = await asyncio.to_thread(
        scripted_server, tmp_path / "openevi", llm, OPENEVI_CHAT_MAX_FRAMES_PER_S="50", **TEXT_ONLY
    )
    await asyncio.to_thread(proc.start)
    try:
        url = proc.base_url.replace("http", "ws", 1) + "/v0/evi/chat?api_key=" + proc.api_key
        async with websockets.connect(url) as ws:
            chat_id = json.loads(await ws.recv())["chat_id"]
            toggles = [json.dumps({"type": t}) for t in ("pause_assistant_message", "resume_assistant_message")]
            for i in range(20_000):
                await ws.send(toggles[i % 2])
            errors = []
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                async with asyncio.timeout(60):  # bounds a hang only
                    while True:
                        message = json.loads(await ws.recv())
                        if message["type"] == "error":
                            errors.append(message)
            assert errors and errors[0]["code"] == "E0104" and "Too many messages" in errors[0]["message"]
            assert len(errors) < 100  # told about once a second, not once per dropped message
            # Far ahead of the frame rate for seconds: the socket is cut off, not read for minutes.
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert proc.proc is not None
        proc.proc.terminate()
        proc.proc.wait(timeout=30)  # bounds a hang only: it used to take minutes
        proc.proc = None
        proc.start()
        events = await client_of(proc).empathic_voice.chats.list_chat_events(id=chat_id, page_size=100)
        total = events.response.total_pages or 0
        assert 0 < total <= 10, total  # at most a few hundred toggles stored, not 20,000
    finally:
        proc.stop()
