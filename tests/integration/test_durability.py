"""What a client saw survives kill -9: a `user_message` the client received is in the chat's events
after the server is killed at once and restarted (it used to be lost 1 time in 54: the socket sent
it while its event still waited in the chat's history queue)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.integration.chat_support import scripted_server
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM

TEXT_ONLY = {"OPENEVI_ASR_PROVIDER": "none", "OPENEVI_VAD_PROVIDER": "none", "OPENEVI_PROSODY_PROVIDER": "none"}
ROUNDS = 2


@pytest.fixture
def crashing(tmp_path: Path, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(tmp_path / "openevi", llm, **TEXT_ONLY)
    proc.start()
    yield proc
    proc.stop()


async def test_a_user_message_the_client_received_survives_kill_9(crashing: ServerProcess) -> None:
    sent: list[tuple[str, str]] = []
    for round_ in range(ROUNDS):
        url = crashing.base_url.replace("http", "ws", 1) + "/v0/evi/chat?api_key=" + crashing.api_key
        text = f"remember round {round_}"
        async with websockets.connect(url) as ws:
            chat_id = json.loads(await ws.recv())["chat_id"]
            await ws.send(json.dumps({"type": "user_input", "text": text}))
            while json.loads(await ws.recv())["type"] != "user_message":
                pass
            crashing.kill()  # the moment the client has it
        sent.append((chat_id, text))
        crashing.start()
    async with httpx.AsyncClient(headers={"X-Hume-Api-Key": crashing.api_key}, timeout=30) as client:
        pages = [
            (await client.get(f"{crashing.base_url}/v0/evi/chats/{chat_id}", params={"page_size": 100})).json()
            for chat_id, _ in sent
        ]
    for (chat_id, text), page in zip(sent, pages, strict=True):
        events = page["events_page"]
        assert text in [e["message_text"] for e in events if e["type"] == "USER_MESSAGE"], (chat_id, events)
