"""Tenant URLs against a real server with the default outbound policy (no loopback allowed), except the
host name `localhost`, which the operator allow-lists here.

A custom language model or webhook at 127.0.0.1 (in any spelling) is refused before anything
connects: the chat gets a clear `error` and the stub behind the URL sees no request; the webhook is
recorded FAILED with the reason. The same stubs reached as `localhost` (allow-listed) work. Every
address used is loopback, so even a broken policy could not send a packet off the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hume.empathic_voice import UserInput
from sqlalchemy import select

from openevi.store.models import WebhookDelivery
from tests.integration.chat_support import client_for, of_type, scripted_server
from tests.integration.live_support import make_config
from tests.integration.support import store
from tests.server import ServerProcess, free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler
from tests.support.scripted_llm import Fail, Reply, ScriptedLLM
from tests.webhook_receiver import Receiver

SECRET = "SECRET-INTERNAL-BODY-7f3a"
WAIT_S = 30.0  # upper bound for slow machines, not an expectation


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    # The default language model (OPENEVI_OPENAI_BASE_URL, the scripted server on 127.0.0.1) is set by
    # the operator and stays trusted; only the tenant URLs in configs are checked.
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("outbound")), llm, OPENEVI_OUTBOUND_ALLOW="localhost", OPENEVI_LLM_TIMEOUT_S="20"
    )
    proc.start()
    yield proc
    proc.stop()


async def clm_config(server: ServerProcess, url: str) -> str:
    return await make_config(server, language_model={"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": url})


async def first_answer(server: ServerProcess, config_id: str) -> list[Any]:
    """Open a chat on the config, say one thing, return what came back up to the error or the answer."""
    client = client_for(server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="tell me what is inside"))
        async with asyncio.timeout(WAIT_S):
            seen: list[Any] = []
            while not seen or seen[-1].type not in ("error", "assistant_end"):
                seen.append(await socket.recv())
        return seen


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("http://127.0.0.1:{port}/chat/completions", "loopback"),
        ("http://2130706433:{port}/chat/completions", "loopback"),
        ("http://0x7f.1:{port}/chat/completions", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/chat/completions", "loopback"),
        ("ws://017700000001:{port}/ws", "loopback"),
    ],
)
async def test_custom_language_model_at_an_internal_address_is_refused(
    server: ServerProcess, llm: ScriptedLLM, template: str, reason: str
) -> None:
    config_id = await clm_config(server, template.format(port=llm.port))
    llm.script(Fail(500, SECRET))
    llm.clear()
    messages = await first_answer(server, config_id)
    error = of_type(messages, "error")[-1]
    assert error.slug == "language_model_error"
    assert "not allowed" in error.message and reason in error.message and "OPENEVI_OUTBOUND_ALLOW" in error.message
    assert SECRET not in error.message
    assert llm.requests == []  # nothing reached the stub behind the URL


@pytest.mark.parametrize("template", ["http://localhost:{port}/chat/completions", "ws://localhost:{port}/ws"])
async def test_allow_listed_custom_language_model_works(server: ServerProcess, llm: ScriptedLLM, template: str) -> None:
    config_id = await clm_config(server, template.format(port=llm.port))
    llm.script(Reply("The allow-list let me through."))
    llm.clear()
    messages = await first_answer(server, config_id)
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["The allow-list let me through."]
    assert len(llm.requests) == 1


class Leaky(QuietHandler):
    """A model endpoint whose error page holds what the tenant must not be shown."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = (f"<html><h1>Admin console</h1><pre>{SECRET}</pre>" + "x" * 3000 + "</html>").encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def leaky() -> Iterator[int]:
    with http_stub.serving(Leaky) as port:
        yield port


async def test_custom_language_model_error_body_is_not_echoed(server: ServerProcess, leaky: int) -> None:
    config_id = await clm_config(server, f"http://localhost:{leaky}/chat/completions")
    error = of_type(await first_answer(server, config_id), "error")[-1]
    assert "HTTP 500" in error.message
    assert SECRET not in error.message and "Admin console" not in error.message and len(error.message) < 300


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


async def test_webhook_to_an_internal_address_fails_with_a_reason_and_allow_listed_one_is_delivered(
    server: ServerProcess, receiver: Receiver
) -> None:
    refused = [
        f"http://127.0.0.1:{receiver.port}/refused-a",
        f"http://[::ffff:127.0.0.1]:{receiver.port}/refused-b",
        f"http://2130706433:{receiver.port}/refused-c",
    ]
    allowed = f"http://localhost:{receiver.port}/allowed"
    hooks = [{"url": url, "events": ["chat_started"]} for url in [*refused, allowed]]
    config_id = await make_config(server, webhooks=hooks)
    client = client_for(server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        chat_id = (await socket.recv()).chat_id

    async def settled() -> dict[str, WebhookDelivery] | None:
        async with store(server) as s:
            found = (await s.scalars(select(WebhookDelivery).where(WebhookDelivery.chat_id == chat_id))).all()
        by_url = {r.url: r for r in found}
        done = len(by_url) == 4 and all(r.status in ("DELIVERED", "FAILED") for r in by_url.values())
        return by_url if done else None

    deadline = time.monotonic() + WAIT_S
    while (rows := await settled()) is None:
        assert time.monotonic() < deadline, "webhook deliveries did not settle"
        await asyncio.sleep(0.1)
    assert rows[allowed].status == "DELIVERED"
    for url in refused:
        row = rows[url]
        assert row.status == "FAILED" and row.attempts == 1 and row.last_status_code is None
        assert row.last_error and "loopback" in row.last_error and "OPENEVI_OUTBOUND_ALLOW" in row.last_error
    assert [r.path for r in receiver.received()] == ["/allowed"]
