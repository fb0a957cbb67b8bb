"""Voice through the official SDK: speech in (linear16 and webm/opus), transcripts, emotions, barge-in."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import struct
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soxr
from hume.empathic_voice import AudioInput, SessionSettings, UserInput

from openevi.speech.prosody.base import EMOTIONS
from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server, wait_chat_ended
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM

RATE = 16000
QUESTION = "What time does the museum open tomorrow"
LONG_REPLY = " ".join(
    f"Sentence number {n} of a long and winding answer that goes on for quite a while." for n in range(1, 13)
)


def speak(text: str, *, rate_wpm: int = 160) -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(rate_wpm), "-w", out.name, text], check=True)
        with wave.open(out.name) as wav:
            source_rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return soxr.resample(pcm, source_rate, RATE).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.float32)


def linear16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / max(1, len(ref))


async def stream(socket: Any, data: bytes, *, chunk_bytes: int, seconds_per_chunk: float) -> None:
    """Send audio in chunks at real-time pace, as a microphone would."""
    for start in range(0, len(data), chunk_bytes):
        await socket.send_publish(AudioInput(data=base64.b64encode(data[start : start + chunk_bytes]).decode()))
        await asyncio.sleep(seconds_per_chunk)


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    # Real-time pacing of audio_output (short lead) so that barge-in has something to stop. These tests
    # script pauses and trailing silences against the silence window, in espeak-ng speech, which cannot
    # exercise the trained end-of-turn model (its cut-offs end with a sentence-final fall): the
    # `smart-turn` default is tested on real recordings (tests/unit/test_end_of_turn_real_speech.py).
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("voice")), llm, OPENEVI_AUDIO_LEAD_MS="500", OPENEVI_TURN_DETECTOR="silence"
    )
    proc.start(timeout=180)
    yield proc
    proc.stop()


async def test_spoken_question_is_transcribed_scored_and_answered(
    voice_server: ServerProcess, llm: ScriptedLLM
) -> None:
    llm.script(Reply("It opens at nine.", when="museum"))
    client = client_for(voice_server)
    audio = np.concatenate([silence(0.3), speak(QUESTION), silence(1.5)])
    async with client.empathic_voice.chat.connect(verbose_transcription=True) as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        sender = asyncio.create_task(
            stream(socket, linear16(audio), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
        if not of_type(messages, "assistant_prosody"):  # measured in the background, may come last
            messages += await recv_until(socket, "assistant_prosody", limit_s=30)

    finals = [m for m in of_type(messages, "user_message") if not m.interim]
    assert len(finals) == 1
    final = finals[0]
    assert final.from_text is False
    assert wer(QUESTION, final.message.content) <= 0.25, final.message.content
    scores = final.models.prosody.scores
    values = [getattr(scores, name) for name in EMOTIONS]  # the SDK's model requires all 48
    assert all(0.0 <= v <= 1.0 for v in values)
    assert 0 <= final.time.begin < final.time.end
    said = " ".join(m.message.content for m in of_type(messages, "assistant_message"))
    assert said == "It opens at nine."
    assert of_type(messages, "audio_output")
    # the assistant's own speech is measured too, and tied to its message
    assistant_ids = {m.id for m in of_type(messages, "assistant_message")}
    measured = of_type(messages, "assistant_prosody")
    assert measured and measured[0].id in assistant_ids
    assert all(0.0 <= getattr(measured[0].models.prosody.scores, name) <= 1.0 for name in EMOTIONS)
    await wait_chat_ended(client, metadata.chat_id)
    events = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id, page_size=100)
    by_id = {e.id: e for e in events.items or []}
    prosody_events = [e for e in by_id.values() if e.type == "ASSISTANT_PROSODY"]
    assert prosody_events and by_id[prosody_events[0].related_event_id].type == "AGENT_MESSAGE"
    user_events = [e for e in by_id.values() if e.type == "USER_MESSAGE"]
    assert user_events and "Admiration" in json.loads(user_events[0].emotion_features or "{}")
    # the model heard the words and the tone of voice
    assert "museum" in (llm.requests[-1].last_user_message or "").lower()
    assert re.search(r" \{[a-z ]+, [a-z ]+, [a-z ]+\}", llm.requests[-1].last_user_message or "")  # EVI's suffix


async def test_webm_opus_from_a_browser_encoder(voice_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Nine o'clock.", when="museum"))
    audio = np.concatenate([speak(QUESTION), silence(1.5)])
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        out = container.add_stream("libopus", rate=48000)
        out.layout = "mono"
        resampled = soxr.resample(audio, RATE, 48000).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(resampled.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in out.encode(frame):
            container.mux(packet)
        for packet in out.encode(None):
            container.mux(packet)
    data = buffer.getvalue()
    seconds = audio.size / RATE
    chunks = max(1, int(seconds / 0.1))
    chunk_bytes = len(data) // chunks + 1
    client = client_for(voice_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        sender = asyncio.create_task(stream(socket, data, chunk_bytes=chunk_bytes, seconds_per_chunk=0.1))
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
    finals = [m for m in of_type(messages, "user_message") if not m.interim]
    assert finals and wer(QUESTION, finals[0].message.content) <= 0.25, finals


async def test_barge_in_stops_the_assistant(voice_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply(LONG_REPLY, chunk_words=3, when="story"))
    client = client_for(voice_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        await socket.send_publish(UserInput(text="Tell me a long story."))
        before = await recv_until(socket, "audio_output", limit_s=30)
        # The user talks over the assistant (well past min_interruption_ms) while it speaks.
        interruption = np.concatenate([speak("Stop, stop, wait a moment please, I have a question"), silence(0.2)])
        sender = asyncio.create_task(
            stream(socket, linear16(interruption), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        after = await recv_until(socket, "user_interruption", limit_s=30)
        await sender
        # Once interrupted, no more audio of the interrupted reply arrives. The user's words (the
        # stream stops after them: silence on the clock) are answered.
        interrupted_ids = {m.id for m in of_type(before + after, "assistant_message")}
        late = await recv_until(socket, "assistant_end", limit_s=60)
    assert not [m for m in late if m.type == "audio_output" and m.id in interrupted_ids]
    assert [m.message.content for m in of_type(late, "user_message") if not m.interim]
    spoken = [m.message.content for m in of_type(before + after, "assistant_message")]
    assert len(spoken) < 12, "the reply was cut short"
    answer = of_type(late, "assistant_message")
    await wait_chat_ended(client, metadata.chat_id)  # events are stored off the hot path: all of them
    events = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id, page_size=100)
    types = [e.type for e in events.items or []]
    assert "USER_INTERRUPTION" in types
    # Stored is what the user heard of the story (its first sentences, the last one perhaps cut at a
    # word), then the whole answer to their question.
    stored = [e.message_text or "" for e in events.items or [] if e.type == "AGENT_MESSAGE"]
    heard, answered = stored[: len(stored) - len(answer)], stored[len(stored) - len(answer) :]
    assert answered == [m.message.content for m in answer]
    assert len(heard) <= len(spoken) and all(said.startswith(kept) for kept, said in zip(heard, spoken, strict=False))


async def test_garbage_audio_gets_an_error_and_the_chat_goes_on(voice_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Still here.", when="there"))
    client = client_for(voice_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(AudioInput(data="not base64!!"))
        error = await recv_until(socket, "error", limit_s=10)
        assert error[-1].slug == "invalid_audio"
        await socket.send_publish(AudioInput(data=base64.b64encode(b"\x01\x02garbage-without-a-header" * 50).decode()))
        error = await recv_until(socket, "error", limit_s=10)
        assert error[-1].slug == "invalid_audio"
        # A WAV header claiming 1 Hz (used to be upsampled 16,000-fold on the event loop): refused.
        fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
        one_hz = b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff" + bytes(2048)
        await socket.send_publish(AudioInput(data=base64.b64encode(one_hz).decode()))
        error = await recv_until(socket, "error", limit_s=10)
        assert error[-1].slug == "invalid_audio" and "sample rate" in error[-1].message
        await socket.send_publish(UserInput(text="Are you there?"))
        messages = await recv_until(socket, "assistant_end", limit_s=30)
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Still here."]


async def test_a_pause_inside_the_turn_does_not_split_it(voice_server: ServerProcess, llm: ScriptedLLM) -> None:
    """A 450 ms pause (under the 800 ms end-of-turn silence) may start a speculative answer, which
    must be dropped when the user goes on: one user turn, answered once, with all its words."""
    llm.script(Reply("Both noted.", when="tickets"))
    client = client_for(voice_server)
    before = len(llm.requests)
    audio = np.concatenate(
        [speak("I would like to visit the museum"), silence(0.45), speak("and buy two tickets"), silence(1.5)]
    )
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        sender = asyncio.create_task(
            stream(socket, linear16(audio), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)
        )
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
    finals = [m for m in of_type(messages, "user_message") if not m.interim]
    assert len(finals) == 1
    assert "museum" in finals[0].message.content.lower() and "ticket" in finals[0].message.content.lower()
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Both noted."]
    answered = llm.requests[before:][-1].last_user_message or ""
    assert "museum" in answered.lower() and "ticket" in answered.lower()


async def test_minutes_of_silence_noise_and_wrong_rate_claims_are_survived(
    voice_server: ServerProcess, llm: ScriptedLLM
) -> None:
    """Long silence, loud noise and audio whose claimed rate is wrong: no crash, no phantom turns
    from silence, and the chat still answers afterwards."""
    llm.script(Reply("I am listening.", when="listening"))
    client = client_for(voice_server)
    rng = np.random.default_rng(7)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        # Three minutes of silence, sent faster than real time in 100 ms chunks.
        await stream(socket, linear16(silence(180)), chunk_bytes=RATE * 2 // 10, seconds_per_chunk=0.0)
        # Two seconds of loud white noise.
        noise = np.clip(rng.normal(0, 0.5, RATE * 2), -1, 1).astype(np.float32)
        await stream(socket, linear16(noise), chunk_bytes=RATE * 2 // 10, seconds_per_chunk=0.0)
        # Speech at 16 kHz while the settings claim 8 kHz stereo.
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": 8000, "channels": 2}))
        await stream(socket, linear16(speak("hello there")), chunk_bytes=3200, seconds_per_chunk=0.0)
        await socket.send_publish(UserInput(text="Are you listening?"))
        messages: list[Any] = []
        async with asyncio.timeout(60):  # the distorted speech may get its own answer first
            while "I am listening." not in [m.message.content for m in of_type(messages, "assistant_message")]:
                messages += await recv_until(socket, "assistant_end", limit_s=60)
    assert not of_type(messages, "error"), of_type(messages, "error")
    await wait_chat_ended(client, metadata.chat_id)
    events = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id, page_size=100)
    assert [e.type for e in events.items or []].count("CHAT_END_MESSAGE") == 1
