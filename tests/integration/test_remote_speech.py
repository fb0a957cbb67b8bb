"""Speech offload: a server whose ASR and TTS are remote OpenAI-compatible services (stubs on 127.0.0.1),
driven through the official SDK with spoken input."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hume.empathic_voice import AudioConfiguration, SessionSettings, UserInput

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.test_voice import RATE, linear16, silence, speak, stream
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.support.speech_stub import Fail, Speak, SpeechStub, Transcribe

HEARD = "What time does the museum open tomorrow"
TONE_HZ = 700.0  # the stub's "voice": a pure tone no local synthesizer would produce
LINEAR16 = SessionSettings(audio=AudioConfiguration(encoding="linear16", sample_rate=RATE, channels=1))


@pytest.fixture(scope="module")
def speech() -> Iterator[SpeechStub]:
    with SpeechStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def remote_server(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, speech: SpeechStub
) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("remote-speech")),
        llm,
        OPENEVI_ASR_PROVIDER="openai",
        OPENEVI_ASR_BASE_URL=speech.base_url,  # the server root
        OPENEVI_ASR_API_KEY="sk-asr-test",
        OPENEVI_ASR_REMOTE_MODEL="stub-whisper",
        OPENEVI_TTS_PROVIDER="openai",
        OPENEVI_TTS_BASE_URL=speech.base_url + "/v1",  # or its /v1 URL
        OPENEVI_TTS_REMOTE_MODEL="kokoro",
        OPENEVI_TTS_REMOTE_VOICE="af_heart",
        OPENEVI_TTS_REMOTE_SAMPLE_RATE="16000",
    )
    proc.start(timeout=120)
    # The server warms both services up at start (one transcription, one "Hello.").
    speech.wait_until(lambda: speech.transcriptions and speech.speeches, timeout=60)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _reset(speech: SpeechStub) -> None:
    speech.clear()
    speech.transcript = Transcribe(HEARD)
    speech.speech = Speak(rate=16_000, tone_hz=TONE_HZ, chunks=3)


def _pcm(messages: list[Any]) -> tuple[bytes, set[int]]:
    """The audio_output chunks joined, and the rates their WAV headers claim."""
    pcm, rates = b"", set()
    for message in of_type(messages, "audio_output"):
        with wave.open(io.BytesIO(base64.b64decode(message.data))) as wav:
            rates.add(wav.getframerate())
            pcm += wav.readframes(wav.getnframes())
    return pcm, rates


def _peak_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


async def _say(socket: Any, text: str) -> None:
    # Trailing silence past OPENEVI_TURN_MAX_SILENCE_MS: the turn ends whatever the model makes of espeak.
    audio = np.concatenate([silence(0.3), speak(text), silence(2.5)])
    await stream(socket, linear16(audio), chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05)


async def test_spoken_turn_is_heard_and_answered_by_the_remote_services(
    remote_server: ServerProcess, llm: ScriptedLLM, speech: SpeechStub
) -> None:
    llm.script(Reply("It opens at nine.", when="museum"))
    client = client_for(remote_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(LINEAR16)
        sender = asyncio.create_task(_say(socket, "What time does it open"))
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender

    finals = [m for m in of_type(messages, "user_message") if not m.interim]
    assert [m.message.content for m in finals] == [HEARD]  # the stub's words, not espeak's
    assert "museum" in (llm.requests[-1].last_user_message or "").lower()
    heard = speech.transcriptions
    assert heard and all(r.fields["model"] == "stub-whisper" for r in heard)
    assert all(r.headers["authorization"] == "Bearer sk-asr-test" for r in heard)
    assert all(r.wav_format[:3] == (16_000, 1, 2) for r in heard)
    assert max(r.wav_format[3] for r in heard) > RATE  # the whole utterance (over a second) went up

    # The engine may start (and drop) speculative answers before the turn is certain, so the reply can
    # be synthesized more than once; every request asks for it the configured way.
    said = [r for r in speech.speeches if r.body["input"] == "It opens at nine."]
    assert said and all(r.body["input"] == "It opens at nine." for r in speech.speeches), speech.speeches
    assert all(
        {k: r.body[k] for k in ("model", "voice", "response_format")}
        == {"model": "kokoro", "voice": "af_heart", "response_format": "pcm"}
        for r in said
    )
    pcm, rates = _pcm(messages)
    assert rates == {24_000}  # resampled from the stub's 16 kHz
    sent_samples = len(said[0].audio) // 2  # the stub's audio for this text, at 16 kHz
    assert abs(len(pcm) // 2 - sent_samples * 24_000 // 16_000) <= 4
    assert abs(_peak_hz(pcm, 24_000) - TONE_HZ) < 10


async def test_remote_failures_become_errors_and_the_chat_goes_on(
    remote_server: ServerProcess, llm: ScriptedLLM, speech: SpeechStub
) -> None:
    llm.script(Reply("Still here.", when="there"), Reply("Fine.", when="again"))
    speech.transcript = Fail(500, "GPU fell over")
    client = client_for(remote_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(LINEAR16)
        sender = asyncio.create_task(_say(socket, "Can you hear me"))
        failed = await recv_until(socket, "error", limit_s=60)
        await sender
        assert "GPU fell over" in failed[-1].message and "HTTP 500" in failed[-1].message
        assert not [m for m in of_type(failed, "user_message") if not m.interim]

        # Text still works, and speech synthesis failing is an error too, not the end of the chat.
        await socket.send_publish(UserInput(text="Are you there?"))
        answered = await recv_until(socket, "assistant_end", limit_s=30)
        assert [m.message.content for m in of_type(answered, "assistant_message")] == ["Still here."]
        assert of_type(answered, "audio_output")
        speech.speech = Fail(503, "TTS is overloaded")
        await socket.send_publish(UserInput(text="Once again?"))
        broken = await recv_until(socket, "assistant_end", limit_s=30)
    errors = [e for e in of_type(broken, "error") if e.slug == "speech_synthesis_error"]
    assert len(errors) == 1 and "TTS is overloaded" in errors[0].message
    assert [m.message.content for m in of_type(broken, "assistant_message")] == ["Fine."]
    assert not of_type(broken, "audio_output")
