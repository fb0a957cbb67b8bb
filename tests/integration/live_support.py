"""More helpers for the live-chat integration tests: configs and tools over REST, history, raw frames,
a joined control-plane socket, a fake web-search backend and webhook signature checks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import websockets
from hume import AsyncHumeClient
from websockets.asyncio.client import ClientConnection

from openevi.webhooks.signing import account_signing_secret
from tests.integration.chat_support import wait_chat_ended
from tests.integration.support import account_of, store, unique
from tests.server import ServerProcess, free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler
from tests.webhook_receiver import Received, Receiver

WAIT_S = 30.0  # upper bound for slow machines, not an expectation


def rest(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers={"X-Hume-Api-Key": server.api_key}, timeout=30.0)


async def make_config(server: ServerProcess, **body: Any) -> str:
    """Create a config (`evi_version` 3) with the given fields; returns its id."""
    async with rest(server) as http:
        response = await http.post("/v0/evi/configs", json={"name": unique("cfg"), "evi_version": "3", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def make_tool(
    client: AsyncHumeClient,
    name: str,
    parameters: dict[str, Any],
    *,
    description: str = "",
    fallback_content: str | None = None,
) -> dict[str, Any]:
    """Create a user-defined tool through the SDK; returns the `{id, version}` reference a config takes."""
    tool = await client.empathic_voice.tools.create_tool(
        name=name,
        parameters=json.dumps(parameters),
        description=description or None,
        fallback_content=fallback_content,
    )
    assert tool is not None
    return {"id": tool.id, "version": tool.version}


async def history(client: AsyncHumeClient, chat_id: str) -> tuple[Any, list[Any]]:
    """The ended chat's record and all its events (waits for the end to be stored)."""
    chat = await wait_chat_ended(client, chat_id, limit_s=WAIT_S)
    pager = await client.empathic_voice.chats.list_chat_events(id=chat_id, page_size=100)
    events = [event async for event in pager]
    return chat, events


def types_of(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def send_raw(socket: Any, frame: str) -> None:
    """Send a frame the SDK would never build (malformed JSON, unknown types, wrong field types)."""
    await socket._websocket.send(frame)


async def recv_raw_until(ws: ClientConnection, kind: str, *, limit_s: float = WAIT_S) -> list[dict[str, Any]]:
    """JSON messages from a raw socket, up to and including the first of type `kind`."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(limit_s):
        while True:
            message = json.loads(await ws.recv())
            seen.append(message)
            if message.get("type") == kind:
                return seen


def join(
    server: ServerProcess, chat_id: str, api_key: str | None = None
) -> AbstractAsyncContextManager[ClientConnection]:
    """A control-plane socket on a live chat.

    hume 0.14.1's `control_plane.connect` builds `…/v0/evi/chat/?chat_id=…` (no `/{chat_id}/connect`
    path), so the join goes through `websockets` directly to the route the protocol defines.
    """
    ws_base = server.base_url.replace("http://", "ws://")
    url = f"{ws_base}/v0/evi/chat/{chat_id}/connect?api_key={api_key or server.api_key}"
    return websockets.connect(url, open_timeout=WAIT_S)


async def wait_until(check: Callable[[], Any], what: str, *, limit_s: float = WAIT_S) -> Any:
    """Poll `check` until it returns something truthy."""
    try:
        async with asyncio.timeout(limit_s):
            while True:
                if result := check():
                    return result
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# --- webhooks --------------------------------------------------------------------------------------


def start_receiver() -> Receiver:
    return Receiver(free_port()).start()


def webhook_bodies(receiver: Receiver, event_name: str, chat_id: str) -> list[tuple[Received, dict[str, Any]]]:
    found = []
    for request in receiver.received():
        body = json.loads(request.body)
        if body.get("event_name") == event_name and body.get("chat_id") == chat_id:
            found.append((request, body))
    return found


async def wait_webhook(receiver: Receiver, event_name: str, chat_id: str) -> tuple[Received, dict[str, Any]]:
    found = await wait_until(lambda: webhook_bodies(receiver, event_name, chat_id), f"{event_name} webhook")
    return found[0]  # type: ignore[no-any-return]


async def signing_secret(server: ServerProcess) -> str:
    async with store(server) as session:
        account_id = await account_of(session, server.api_key)
        return await account_signing_secret(session, account_id)


def verify_signature(secret: str, request: Received) -> None:
    """Both signature pairs of docs/webhooks.md, checked with the documented recipe."""
    ts = request.headers["x-openevi-timestamp"]
    expected = hmac.new(secret.encode(), ts.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-openevi-signature"], f"v1={expected}")
    hume_ts = request.headers["x-hume-ai-webhook-timestamp"]
    hume = hmac.new(secret.encode(), request.body + b"." + hume_ts.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-hume-ai-webhook-signature"], hume)


# --- a fake web-search backend ---------------------------------------------------------------------


class FakeSearch:
    """GET /search?q=… answers a fixed text; the queries are recorded."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.queries: list[str] = []
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/search"

    def start(self) -> FakeSearch:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake.queries.extend(parse_qs(urlparse(self.path).query).get("q", []))
                body = fake.answer.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http_stub.serve(self.port, Handler)
        return self

    def stop(self) -> None:
        http_stub.stop(self._server)
        self._server = None
