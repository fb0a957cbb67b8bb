"""Replies in the user's language, end to end through the official SDK, with real recorded speech.

A French and an Italian telephony prompt (real speakers, from Debian's Asterisk sound packages) are
spoken into a chat with default settings: Whisper detects the language, `user_message` carries it,
the scripted model is told which language to answer in (it answers in that language only when told),
and the reply's audio is speech of that language (Whisper, in this process, hears it so).
"""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from hume.empathic_voice import SessionSettings

from openevi.speech.asr.whisper import WhisperASR
from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server
from tests.integration.test_voice import RATE, linear16, silence, stream
from tests.server import ServerProcess
from tests.support.real_speech import FetchError, Utterance, utterances
from tests.support.scripted_llm import RecordedRequest, Reply, ScriptedLLM
from tests.support.speech import heard_share

ANSWERS = {
    "French": "Bien sûr, je vais vous aider avec plaisir.",
    "Italian": "Certo, la aiuto volentieri con questa richiesta.",
}


def _told(language: str) -> object:
    def matches(request: RecordedRequest) -> bool:
        system = next((m.get("content") for m in request.messages if m.get("role") == "system"), "") or ""
        return f"Answer in {language}." in system

    return matches


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(Path(tmp_path_factory.mktemp("languages")), llm)  # default: the language is detected
    proc.start(timeout=180)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def whisper() -> AsyncIterator[WhisperASR]:
    asr = WhisperASR(language=None)
    await asr.load()
    yield asr
    await asr.aclose()


def _prompt(speaker: str) -> Utterance:
    """The speaker's longest prompt (several seconds: detection is sure of the language)."""
    try:
        spoken = utterances(speaker=speaker, min_seconds=2.5, max_seconds=8.0)
    except FetchError as exc:  # a missing corpus is a failure, never a skip
        pytest.fail(f"could not fetch the real speech corpus: {exc}")
    return max(spoken, key=lambda u: (u.duration, u.id))


def _pcm(messages: list[object]) -> tuple[np.ndarray, int]:
    chunks = []
    rate = 0
    for message in of_type(messages, "audio_output"):
        with wave.open(io.BytesIO(base64.b64decode(message.data))) as wav:  # type: ignore[attr-defined]
            rate = wav.getframerate()
            chunks.append(np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"))
    return np.concatenate(chunks).astype(np.float32) / 32768.0, rate


@pytest.mark.parametrize(("speaker", "code", "language"), [
    ("asterisk-fr-june", "fr", "French"),
    ("asterisk-it-carlo", "it", "Italian"),
])  # fmt: skip
async def test_spoken_language_is_detected_answered_and_spoken(
    server: ServerProcess, llm: ScriptedLLM, whisper: WhisperASR, speaker: str, code: str, language: str
) -> None:
    llm.script(*(Reply(text, when=_told(name)) for name, text in ANSWERS.items()))
    llm.default = Reply("I only answer in English when nobody tells me otherwise.")
    prompt = _prompt(speaker)
    audio = np.concatenate([silence(0.3), prompt.load(RATE), silence(1.5)])
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()  # chat_metadata
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        pcm = linear16(audio)
        sender = asyncio.create_task(stream(socket, pcm, chunk_bytes=RATE * 2 // 20, seconds_per_chunk=0.05))
        messages = await recv_until(socket, "assistant_end", limit_s=90)
        await sender

    finals = [m for m in of_type(messages, "user_message") if not m.interim]
    assert [m.language for m in finals] == [code]
    assert heard_share(prompt.text, finals[0].message.content) >= 0.6, (prompt.text, finals[0].message.content)
    said = " ".join(m.message.content for m in of_type(messages, "assistant_message"))
    assert said == ANSWERS[language]
    pcm, rate = _pcm(messages)
    heard = await whisper.transcribe(np.asarray(soxr.resample(pcm, rate, 16_000), dtype=np.float32))
    assert heard.language == code, heard
