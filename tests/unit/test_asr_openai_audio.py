"""Remote ASR (OpenAI-compatible /v1/audio/transcriptions) against the stub speech server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from openevi.settings import Settings
from openevi.speech.asr.base import Transcript
from openevi.speech.asr.errors import ASRError
from openevi.speech.asr.openai_audio import OpenAIAudioASR
from openevi.speech.asr.registry import create_asr, provider_options
from tests.support.silent_server import silent_server
from tests.support.speech_stub import Fail, Malformed, SpeechStub, Transcribe

RATE = 16_000


@pytest.fixture(scope="module")
def stub() -> Iterator[SpeechStub]:
    with SpeechStub() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(stub: SpeechStub) -> None:
    stub.clear()
    stub.transcript = Transcribe("  What time is it?  ", language="english")


def _speech(seconds: float = 0.75) -> np.ndarray:
    t = np.arange(int(RATE * seconds), dtype=np.float32) / RATE
    return (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


async def _transcribe(asr: OpenAIAudioASR, audio: np.ndarray, prompt: str | None = None) -> Transcript:
    try:
        return await asr.transcribe(audio, prompt=prompt)
    finally:
        await asr.aclose()


async def test_sends_a_multipart_wav_at_the_declared_rate(stub: SpeechStub) -> None:
    audio = _speech()
    asr = OpenAIAudioASR(base_url=stub.base_url, api_key="sk-asr", model="whisper-large-v3", language="en")
    assert asr.capabilities.sample_rate == RATE and asr.capabilities.streaming is False
    transcript = await _transcribe(asr, audio, prompt="Museum opening hours")
    assert transcript.text == "What time is it?"
    assert transcript.language == "en"
    (sent,) = stub.transcriptions
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert sent.headers["authorization"] == "Bearer sk-asr"
    assert sent.fields == {
        "model": "whisper-large-v3",
        "language": "en",
        "response_format": "json",
        "prompt": "Museum opening hours",
    }
    assert sent.filename.endswith(".wav") and sent.file_content_type == "audio/wav"
    assert sent.wav_format == (RATE, 1, 2, audio.size)
    # the samples arrive intact (int16 quantisation only)
    assert np.max(np.abs(sent.samples() / 32767.0 - audio)) < 1e-4


async def test_detects_language_with_verbose_json(stub: SpeechStub) -> None:
    asr = OpenAIAudioASR(base_url=stub.base_url + "/v1/", language=None)  # a /v1 base works too
    transcript = await _transcribe(asr, _speech())
    (sent,) = stub.transcriptions
    assert sent.fields["response_format"] == "verbose_json" and "language" not in sent.fields
    assert "authorization" not in sent.headers
    assert transcript.language == "en"  # OpenAI's "english" as its ISO code


async def test_iso_code_from_the_server_is_kept(stub: SpeechStub) -> None:
    stub.transcript = Transcribe("Wie spät ist es?", language="de")  # Speaches reports codes
    transcript = await _transcribe(OpenAIAudioASR(base_url=stub.base_url, language=""), _speech())
    assert transcript.text == "Wie spät ist es?" and transcript.language == "de"


async def test_server_refusing_verbose_json_is_asked_for_json_from_then_on(stub: SpeechStub) -> None:
    stub.transcript = Transcribe("Hola", refuse=("verbose_json",))
    asr = OpenAIAudioASR(base_url=stub.base_url, language=None)
    first = await asr.transcribe(_speech())
    second = await _transcribe(asr, _speech())
    assert first.text == second.text == "Hola" and first.language is None
    assert [r.fields["response_format"] for r in stub.transcriptions] == ["verbose_json", "json", "json"]


async def test_http_error_names_status_and_server_message(stub: SpeechStub) -> None:
    stub.transcript = Fail(500, "CUDA out of memory")
    with pytest.raises(ASRError, match=r"returned HTTP 500: CUDA out of memory") as caught:
        await _transcribe(OpenAIAudioASR(base_url=stub.base_url), _speech())
    assert f"{stub.base_url}/v1/audio/transcriptions" in str(caught.value)


async def test_fastapi_style_error_detail_is_shown(stub: SpeechStub) -> None:
    stub.transcript = Fail(404, "Model 'nope' is not installed", shape="kokoro")
    with pytest.raises(ASRError, match=r"HTTP 404: Model 'nope' is not installed"):
        await _transcribe(OpenAIAudioASR(base_url=stub.base_url, model="nope"), _speech())


@pytest.mark.parametrize(
    "reply",
    [Malformed(), Malformed(b'{"transcript": "hi"}', "application/json"), Malformed(b"[1, 2]", "application/json")],
)
async def test_malformed_reply_is_a_clear_error(stub: SpeechStub, reply: Malformed) -> None:
    stub.transcript = reply
    with pytest.raises(ASRError, match="malformed transcription"):
        await _transcribe(OpenAIAudioASR(base_url=stub.base_url), _speech())


async def test_read_timeout_is_a_clear_error() -> None:
    async with silent_server() as url:
        asr = OpenAIAudioASR(base_url=url, read_timeout=0.2)
        with pytest.raises(ASRError, match=r"sent nothing for 0.2 s \(read timeout\)"):
            await _transcribe(asr, _speech())


async def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ASRError, match=rf"127.0.0.1:{port}/v1/audio/transcriptions is unreachable"):
        await _transcribe(OpenAIAudioASR(base_url=f"http://127.0.0.1:{port}"), _speech())


async def test_empty_audio_sends_nothing_and_closed_provider_refuses(stub: SpeechStub) -> None:
    asr = OpenAIAudioASR(base_url=stub.base_url)
    assert (await asr.transcribe(np.zeros(0, dtype=np.float32))).text == ""
    await asr.aclose()
    with pytest.raises(ASRError, match="closed"):
        await asr.transcribe(_speech())
    assert stub.transcriptions == []


async def test_built_from_settings_through_the_registry_and_warmed(stub: SpeechStub) -> None:
    settings = Settings(
        asr_provider="openai",
        asr_base_url=stub.base_url,
        asr_api_key="sk-from-settings",
        asr_remote_model="Systran/faster-whisper-small",
        asr_language="",
        asr_read_timeout_s=7.0,
    )
    asr = create_asr("openai", **provider_options("openai", settings))
    assert isinstance(asr, OpenAIAudioASR)
    try:
        await asr.load()  # one short warm-up transcription
    finally:
        await asr.aclose()
    (sent,) = stub.transcriptions
    assert sent.fields["model"] == "Systran/faster-whisper-small"
    assert sent.fields["response_format"] == "verbose_json"
    assert sent.headers["authorization"] == "Bearer sk-from-settings"
    assert sent.wav_format[0] == RATE


def test_missing_base_url_fails_at_construction() -> None:
    with pytest.raises(ASRError, match="OPENEVI_ASR_BASE_URL"):
        OpenAIAudioASR(base_url=" ")
