"""A custom language model hears a spoken turn as Hume's would: the 48 expression measures in
`models.prosody.scores`, and the words with EVI's `{…}` suffix (SSE and WebSocket forms)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hume.empathic_voice import AudioConfiguration, SessionSettings

from openevi.speech.prosody.base import EMOTIONS
from tests.integration.chat_support import client_for, llm, of_type, recv_until, scripted_server
from tests.integration.test_voice import QUESTION, RATE, linear16, silence, speak, stream
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM

__all__ = ["llm"]  # fixture
WIRE_NAMES = {"Surprise (negative)", "Surprise (positive)", "Aesthetic Appreciation", "Empathic Pain"}
SUFFIX = re.compile(r"^(?P<words>[^{]+) \{(?P<tone>[a-z ]+, [a-z ]+, [a-z ]+)\}$")
INTENSITY = ("slightly", "somewhat", "moderately", "quite", "very", "extremely")


@pytest.fixture(scope="module")
def clm_server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    # The scripted model is on loopback, which tenant URLs may reach only when allowed.
    proc = scripted_server(Path(tmp_path_factory.mktemp("clm")), llm, OPENEVI_OUTBOUND_ALLOW="127.0.0.1")
    proc.start(timeout=180)
    yield proc
    proc.stop()


@pytest.mark.parametrize("form", ["websocket", "sse"])
async def test_spoken_turn_reaches_the_custom_model_with_scores_and_suffix(
    clm_server: ServerProcess, llm: ScriptedLLM, form: str
) -> None:
    llm.script(Reply("It opens at nine.", when="museum"))
    llm.clear()
    client = client_for(clm_server)
    url = llm.ws_url if form == "websocket" else llm.completions_url
    config = await client.empathic_voice.configs.create_config(
        name=f"clm-{form}-{uuid.uuid4().hex[:8]}",
        evi_version="3",
        language_model={"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": url},
    )
    audio = np.concatenate([silence(0.3), speak(QUESTION), silence(1.5)])
    async with client.empathic_voice.chat.connect(config_id=config.id) as socket:
        await socket.recv()
        await socket.send_publish(
            SessionSettings(audio=AudioConfiguration(encoding="linear16", sample_rate=RATE, channels=1))
        )
        sender = asyncio.create_task(
            stream(socket, linear16(audio), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
    assert not of_type(messages, "error")
    (heard,) = [m for m in of_type(messages, "user_message") if not m.interim]
    client_scores = {name: getattr(heard.models.prosody.scores, name) for name in EMOTIONS}

    # the custom model answered (its rule matches the spoken words) and was sent the turn
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["It opens at nine."]
    request = llm.requests[-1]
    sent = request.body["messages"][-1]
    assert (sent["type"] if form == "websocket" else sent["role"]) == (
        "user_message" if form == "websocket" else "user"
    )
    scores = sent["models"]["prosody"]["scores"]
    assert len(scores) == 48 and set(scores) >= WIRE_NAMES
    # the very numbers the client's user_message carried
    assert sorted(scores.values()) == pytest.approx(sorted(client_scores.values()), abs=1e-6)
    content = sent["message"]["content"] if form == "websocket" else sent["content"]
    match = SUFFIX.match(content)
    assert match, content
    assert match.group("words").strip() == heard.message.content.strip()
    assert content.split("{")[0].strip() == heard.message.content.strip()
    assert all(part.split()[0] in INTENSITY for part in match.group("tone").split(", "))
