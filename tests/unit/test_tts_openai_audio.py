"""Remote TTS (OpenAI-compatible /v1/audio/speech) against the stub speech server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from openevi.settings import Settings
from openevi.speech.tts.base import TTSError
from openevi.speech.tts.openai_audio import OpenAIAudioTTS, WavDecoder, parse_voice_map
from openevi.speech.tts.registry import create_tts, provider_options
from openevi.speech.tts.style import STYLES, styled
from openevi.speech.voices import DEFAULT_VOICE, Voice
from tests.support.speech_stub import Fail, Hang, Malformed, Speak, SpeechStub, streaming_wav_header, tone

TEXT = "It opens at nine tomorrow morning."


@pytest.fixture(scope="module")
def stub() -> Iterator[SpeechStub]:
    with SpeechStub() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(stub: SpeechStub) -> None:
    stub.clear()
    stub.speech = Speak()


async def _collect(tts: OpenAIAudioTTS, text: str = TEXT) -> bytes:
    try:
        chunks = [c async for c in tts.synthesize(text, voice=DEFAULT_VOICE)]
    finally:
        await tts.aclose()
    assert all(len(c) % 2 == 0 for c in chunks)
    return b"".join(chunks)


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _peak_hz(pcm: bytes, rate: int = 24_000) -> float:
    samples = _samples(pcm)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


async def test_pcm_streams_first_chunk_before_the_server_finishes(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=24_000, chunks=4, gate=True)
    tts = OpenAIAudioTTS(base_url=stub.base_url, api_key="sk-tts", model="kokoro", voice="af_heart", speed=1.1)
    stream = tts.synthesize(TEXT, voice=DEFAULT_VOICE)
    try:
        async with asyncio.timeout(10):  # a provider that waited for the whole reply would never get here
            first = await anext(stream)
        (request,) = stub.speeches
        assert first and not request.finished  # the stub is still holding back the rest
        stub.release()
        rest = [chunk async for chunk in stream]
    finally:
        await stream.aclose()
        await tts.aclose()
    assert request.body == {
        "model": "kokoro",
        "input": TEXT,
        "voice": "af_heart",
        "response_format": "pcm",
        "speed": 1.1,
    }
    assert request.headers["authorization"] == "Bearer sk-tts"
    assert request.headers["content-type"] == "application/json"
    # 24 kHz pcm is passed through unchanged
    assert first + b"".join(rest) == request.audio
    assert request.finished


async def test_pcm_split_mid_sample_is_reassembled(stub: SpeechStub) -> None:
    stub.speech = Speak(chunks=7, split_at_odd_bytes=True)
    audio = await _collect(OpenAIAudioTTS(base_url=stub.base_url + "/v1"))
    assert audio == stub.speeches[0].audio
    assert "speed" not in stub.speeches[0].body  # not sent unless configured


async def test_pcm_at_another_rate_is_resampled(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=16_000, tone_hz=500.0, chunks=5)
    audio = await _collect(OpenAIAudioTTS(base_url=stub.base_url, pcm_sample_rate=16_000))
    sent = len(stub.speeches[0].audio) // 2
    assert abs(len(audio) // 2 - sent * 24_000 / 16_000) <= 2
    assert abs(_peak_hz(audio) - 500.0) < 10


async def test_pcm_rate_from_the_content_type_wins(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=22_050, content_type="audio/pcm;rate=22050")
    audio = await _collect(OpenAIAudioTTS(base_url=stub.base_url))  # configured rate stays 24000
    sent = len(stub.speeches[0].audio) // 2
    assert abs(len(audio) // 2 - sent * 24_000 / 22_050) <= 2


async def test_wav_header_gives_the_rate_and_channels(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=22_050, channels=2, tone_hz=600.0, chunks=6, split_at_odd_bytes=True)
    audio = await _collect(OpenAIAudioTTS(base_url=stub.base_url, response_format="wav"))
    request = stub.speeches[0]
    assert request.body["response_format"] == "wav"
    frames = len(request.audio) // 4
    assert abs(len(audio) // 2 - frames * 24_000 / 22_050) <= 2
    assert abs(_peak_hz(audio) - 600.0) < 10


async def test_wav_reply_to_a_pcm_request_is_parsed(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=24_000, force_format="wav")
    audio = await _collect(OpenAIAudioTTS(base_url=stub.base_url))
    assert stub.speeches[0].body["response_format"] == "pcm"
    assert audio == stub.speeches[0].audio  # the header is not played as audio


async def test_server_refusing_pcm_is_asked_for_wav_once_and_remembered(stub: SpeechStub) -> None:
    stub.speech = Speak(rate=24_000, refuse=("pcm",))
    tts = OpenAIAudioTTS(base_url=stub.base_url)
    try:
        first = b"".join([c async for c in tts.synthesize("One.", voice=DEFAULT_VOICE)])
        second = b"".join([c async for c in tts.synthesize("Two.", voice=DEFAULT_VOICE)])
    finally:
        await tts.aclose()
    formats = [r.body["response_format"] for r in stub.speeches]
    assert formats == ["pcm", "wav", "wav"]
    assert first == stub.speeches[1].audio and second == stub.speeches[2].audio


async def test_http_500_is_a_tts_error_with_the_server_message(stub: SpeechStub) -> None:
    stub.speech = Fail(500, "voice model crashed")
    with pytest.raises(TTSError, match=r"/v1/audio/speech returned HTTP 500: voice model crashed"):
        await _collect(OpenAIAudioTTS(base_url=stub.base_url))
    assert len(stub.speeches) == 1  # a server error is not retried as wav


async def test_kokoro_error_detail_is_shown(stub: SpeechStub) -> None:
    stub.speech = Fail(400, "Voice 'zz_nobody' not found", shape="kokoro")
    with pytest.raises(TTSError, match=r"HTTP 400: Voice 'zz_nobody' not found"):
        await _collect(OpenAIAudioTTS(base_url=stub.base_url, voice="zz_nobody", response_format="wav"))


async def test_silence_mid_stream_is_a_read_timeout(stub: SpeechStub) -> None:
    stub.speech = Hang(after_bytes=960)
    # Long enough for the first bytes to arrive first on a loaded machine (the stub sends them at once).
    tts = OpenAIAudioTTS(base_url=stub.base_url, read_timeout=1.0)
    got: list[bytes] = []
    with pytest.raises(TTSError, match=r"sent nothing for 1.0 s \(read timeout\)"):
        try:
            async for chunk in tts.synthesize(TEXT, voice=DEFAULT_VOICE):
                got.append(chunk)
        finally:
            await tts.aclose()
    assert b"".join(got) == stub.speeches[0].audio  # what came before the stall was delivered


async def test_unreachable_server_is_a_tts_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TTSError, match="is unreachable"):
        await _collect(OpenAIAudioTTS(base_url=f"http://127.0.0.1:{port}"))


def _eight_bit_wav() -> bytes:
    header = bytearray(streaming_wav_header(24_000, 1))
    header[34:36] = (8).to_bytes(2, "little")  # bits per sample in the fmt chunk
    return bytes(header) + b"\x80" * 64


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Malformed(b"RIFF\x00\x00\x00\x00AVI LIST", "audio/wav"), "expected a WAV file"),
        (Malformed(_eight_bit_wav(), "audio/wav"), "unsupported WAV encoding"),
        (Malformed(b"RIFF\xff\xff\xff\xffWAVEfmt ", "audio/wav"), "ended before its audio data"),
    ],
)
async def test_malformed_audio_is_a_tts_error(stub: SpeechStub, reply: Malformed, message: str) -> None:
    stub.speech = reply
    with pytest.raises(TTSError, match=message):
        await _collect(OpenAIAudioTTS(base_url=stub.base_url))


async def test_closing_the_stream_closes_the_http_response(stub: SpeechStub) -> None:
    stub.speech = Speak(chunks=4, gate=True)
    tts = OpenAIAudioTTS(base_url=stub.base_url)
    try:
        async with contextlib.aclosing(tts.synthesize(TEXT, voice=DEFAULT_VOICE)) as stream:
            assert await anext(stream)
        (request,) = stub.speeches
        # The stub learns of the closed connection while it is still holding back the rest.
        await asyncio.to_thread(stub.wait_until, lambda: request.aborted)
        assert not request.finished
    finally:
        stub.release()
        await tts.aclose()


async def test_voice_mapping_by_name_or_id_else_default(stub: SpeechStub) -> None:
    mapped = OpenAIAudioTTS(base_url=stub.base_url, voice="alloy", voices=f"{DEFAULT_VOICE.name}=am_michael")
    assert mapped.remote_voice(DEFAULT_VOICE) == "am_michael"
    by_id = OpenAIAudioTTS(base_url=stub.base_url, voices={DEFAULT_VOICE.id: "onyx"})
    assert by_id.remote_voice(DEFAULT_VOICE) == "onyx"
    await _collect(mapped)
    assert stub.speeches[0].body["voice"] == "am_michael"
    unmapped = OpenAIAudioTTS(base_url=stub.base_url, voice="nova", voices="Somebody Else=echo")
    assert unmapped.remote_voice(DEFAULT_VOICE) == "nova"
    await by_id.aclose()
    await unmapped.aclose()


def test_parse_voice_map() -> None:
    assert parse_voice_map(" Joe = am_michael , Ava Song=af_heart,") == {"Joe": "am_michael", "Ava Song": "af_heart"}
    with pytest.raises(TTSError, match="Bad voice mapping"):
        parse_voice_map("Joe")


async def test_empty_text_sends_nothing_and_closed_provider_refuses(stub: SpeechStub) -> None:
    tts = OpenAIAudioTTS(base_url=stub.base_url)
    assert [c async for c in tts.synthesize("  ", voice=DEFAULT_VOICE)] == []
    await tts.aclose()
    with pytest.raises(TTSError, match="closed"):
        async for _ in tts.synthesize(TEXT, voice=DEFAULT_VOICE):
            pass
    assert stub.speeches == []


async def test_built_from_settings_through_the_registry(stub: SpeechStub) -> None:
    settings = Settings(
        tts_provider="openai",
        tts_base_url=stub.base_url,
        tts_api_key="sk-settings",
        tts_remote_model="tts-1-hd",
        tts_remote_voice="shimmer",
        tts_remote_format="wav",
        tts_remote_speed=0.9,
    )
    tts = create_tts("openai", **provider_options("openai", settings))
    assert isinstance(tts, OpenAIAudioTTS) and tts.sample_rate == 24_000
    await _collect(tts)
    body = stub.speeches[0].body
    assert (body["model"], body["voice"], body["response_format"], body["speed"]) == ("tts-1-hd", "shimmer", "wav", 0.9)


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(TTSError, match="OPENEVI_TTS_BASE_URL"):
        OpenAIAudioTTS(base_url="")
    with pytest.raises(TTSError, match="response format"):
        OpenAIAudioTTS(response_format="mp3")


def test_wav_decoder_honours_a_known_data_size() -> None:
    pcm = tone(24_000, 0.01, 440.0).tobytes()
    header = streaming_wav_header(24_000, 1)
    sized = header[:-4] + len(pcm).to_bytes(4, "little")
    decoder = WavDecoder()
    out = decoder.feed(sized + pcm[:100]) + decoder.feed(pcm[100:] + b"LIST\x04\x00\x00\x00junk")
    assert out + decoder.finish() == pcm  # the trailing chunk is not played


async def test_a_reply_style_goes_as_instructions_until_the_server_refuses_them(stub: SpeechStub) -> None:
    comforting = styled(DEFAULT_VOICE, STYLES["comforting"])
    tts = OpenAIAudioTTS(base_url=stub.base_url)
    try:
        await _drain(tts, comforting)
        assert stub.speeches[-1].body["instructions"] == STYLES["comforting"].instructions
        await _drain(tts, DEFAULT_VOICE)  # neutral: nothing to say
        assert "instructions" not in stub.speeches[-1].body
        stub.speech = Speak(unknown_fields=("instructions",))
        assert await _drain(tts, comforting)  # refused, then spoken without them
        await _drain(tts, comforting)
    finally:
        await tts.aclose()
    sent = ["instructions" in r.body for r in stub.speeches]
    assert sent == [True, False, True, False, False]


async def test_instructions_can_be_turned_off(stub: SpeechStub) -> None:
    tts = OpenAIAudioTTS(base_url=stub.base_url, instructions=False)
    try:
        await _drain(tts, styled(DEFAULT_VOICE, STYLES["bright"]))
    finally:
        await tts.aclose()
    assert "instructions" not in stub.speeches[-1].body


async def _drain(tts: OpenAIAudioTTS, voice: Voice) -> bytes:
    return b"".join([c async for c in tts.synthesize(TEXT, voice=voice)])
