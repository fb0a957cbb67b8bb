"""A custom language model hears a spoken turn as Hume's would: the 48 expression measures in
`models.prosody.scores`, and the words with EVI's `{…}` suffix (SSE and WebSocket forms)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hume import AsyncHumeClient
from hume.empathic_voice import AudioConfiguration, SessionSettings

from openevi.speech.prosody.base import EMOTIONS
from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.test_voice import QUESTION, RATE, linear16, silence, speak, stream
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM

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


async def spoken_turn(client: AsyncHumeClient, config_id: str, audio: np.ndarray) -> list[Any]:
    """Stream `audio` (16 kHz linear16, at about real time) into a chat; its messages to assistant_end."""
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(
            SessionSettings(audio=AudioConfiguration(encoding="linear16", sample_rate=RATE, channels=1))
        )
        sender = asyncio.create_task(
            stream(socket, linear16(audio), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        messages = await recv_until(socket, "assistant_end", limit_s=90)
        await sender
    return messages


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
    messages = await spoken_turn(client, config.id, np.concatenate([silence(0.3), speak(QUESTION), silence(1.5)]))
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


async def test_one_spoken_turn_with_a_pause_is_one_request_without_our_prompt(
    clm_server: ServerProcess, llm: ScriptedLLM
) -> None:
    """A pause inside the turn (shorter than the end-of-turn silence) starts no speculative request to
    a custom model, and a config without a prompt sends it no system prompt of openevi's."""
    llm.script(Reply("It opens at nine.", when="museum"))
    llm.clear()
    client = client_for(clm_server)
    config = await client.empathic_voice.configs.create_config(
        name=f"clm-once-{uuid.uuid4().hex[:8]}",
        evi_version="3",
        language_model={"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": llm.ws_url},
        turn_detection={"end_of_turn_silence_ms": 2500},
    )
    # The first words are transcribed well inside the pause (speculation's chance to ask early).
    audio = np.concatenate([silence(0.3), speak("Hello there"), silence(1.5), speak(QUESTION), silence(3.0)])
    messages = await spoken_turn(client, config.id, audio)
    assert not of_type(messages, "error")
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["It opens at nine."]
    (request,) = llm.requests  # the finished turn only
    kinds = [m["type"] for m in request.body["messages"]]
    assert "system_prompt" not in kinds, kinds
    assert "hello" in request.body["messages"][-1]["message"]["content"].lower()
