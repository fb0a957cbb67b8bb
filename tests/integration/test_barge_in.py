"""Barge-in options through the SDK: backchannel tolerance keeps the assistant talking through "okay"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hume.empathic_voice import SessionSettings, UserInput

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.live_support import history, make_config, types_of
from tests.integration.test_voice import LONG_REPLY, RATE, linear16, silence, speak, stream
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.support.speech import packaged_sound


@pytest.fixture(scope="module")
def tolerant_server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("backchannel")),
        llm,
        OPENEVI_AUDIO_LEAD_MS="500",
        OPENEVI_BACKCHANNEL_TOLERANCE="true",
        # The silence rule: these sounds (espeak's "okay", a login chime) are no turns the trained
        # end-of-turn model can judge, and under its 200 ms rule the chime's inner gaps split it into
        # fragments on which Whisper can hallucinate a word ("Bye."): see docs/protocol.md.
        OPENEVI_TURN_DETECTOR="silence",
    )
    proc.start(timeout=180)
    yield proc
    proc.stop()


async def story_playing(socket: Any) -> list[Any]:
    """Audio settings, then a long story asked for; its messages until the first audio_output."""
    await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
    await socket.send_publish(UserInput(text="Tell me a long story."))
    return await recv_until(socket, "audio_output", limit_s=30)


async def test_a_backchannel_does_not_stop_the_answer(tolerant_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply(LONG_REPLY, chunk_words=3, when="story"))
    config_id = await make_config(tolerant_server, interruption={"min_interruption_ms": 800})
    client = client_for(tolerant_server)
    asked = len(llm.requests)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        messages = await story_playing(socket)
        nod = np.concatenate([speak("okay"), silence(1.5)])
        sender = asyncio.create_task(stream(socket, linear16(nod), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05))
        messages += await recv_until(socket, "user_message", limit_s=30)
        await sender
        heard = messages[-1]
        messages += await recv_until(socket, "assistant_message", limit_s=30)  # it goes on talking
        before_thanks = len(messages)
        await socket.send_publish(UserInput(text="Thanks, that is enough."))  # end it the polite way
        messages += await recv_until(socket, "assistant_end", limit_s=60)
    assert "okay" in heard.message.content.lower(), heard.message.content
    assert not of_type(messages[:before_thanks], "user_interruption")
    spoken_after = messages[messages.index(heard) + 1 : before_thanks]
    assert of_type(spoken_after, "assistant_message"), "the answer went on after the backchannel"
    # The backchannel was not answered: the model was asked once for the story, then for "Thanks".
    assert ["okay" in (r.last_user_message or "").lower() for r in llm.requests[asked:]].count(True) == 0
    _, events = await history(client, metadata.chat_id)
    assert "okay" in " ".join(e.message_text or "" for e in events if e.type == "USER_MESSAGE").lower()
    assert types_of(events).count("USER_MESSAGE") == 3


async def test_a_barge_in_by_a_sound_without_words_resumes_the_answer(
    tolerant_server: ServerProcess, llm: ScriptedLLM
) -> None:
    """A real recorded sound (not speech) over the assistant, with a sensitive config: it barges in,
    the recognizer hears no words in it, and the answer goes on instead of being dropped."""
    llm.script(Reply(LONG_REPLY, chunk_words=3, when="story"))
    config_id = await make_config(
        tolerant_server,
        interruption={"min_interruption_ms": 60},
        turn_detection={"speech_detection_threshold": 0.2},
    )
    client = client_for(tolerant_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        messages = await story_playing(socket)
        noise = np.concatenate([packaged_sound("service-login.oga"), silence(1.5)])
        sender = asyncio.create_task(
            stream(socket, linear16(noise), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        messages += await recv_until(socket, "user_interruption", limit_s=30)
        interrupted_at = len(messages)
        messages += await recv_until(socket, "assistant_message", limit_s=30)  # it goes on talking
        await sender
        await socket.send_publish(UserInput(text="Thanks, that is enough."))
        messages += await recv_until(socket, "assistant_end", limit_s=60)
    resumed = of_type(messages[interrupted_at:], "assistant_message")[0]
    assert resumed.message.content.strip() and not resumed.from_text
    told = [m.message.content for m in of_type(messages, "user_message") if not m.interim]
    assert told == ["Tell me a long story.", "Thanks, that is enough."]  # the sound was no user turn
    _, events = await history(client, metadata.chat_id)
    assert types_of(events).count("USER_INTERRUPTION") >= 1
