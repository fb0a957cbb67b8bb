"""Piper TTS with the real shipped Joe voice: audio, streaming, cancellation, errors, registry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from piper import PiperVoice
from piper.config import SynthesisConfig

from openevi.audio.wav import pcm_duration_ms
from openevi.speech.tts.base import TextToSpeech, TTSError
from openevi.speech.tts.piper import PiperTTS, _Job, resolve_model
from openevi.speech.tts.registry import PROVIDERS, Provider, create_tts
from openevi.speech.voices import DEFAULT_VOICE, VOICES, Voice

SENTENCE = "The quick brown fox jumps over the lazy dog."
MANY = " ".join(f"This is sentence number {n}, spoken by the default voice." for n in range(1, 9))
# Generous guard against a hang; never an assertion about speed.
HANG_GUARD_S = 120


@pytest.fixture(scope="module")
async def tts() -> AsyncIterator[PiperTTS]:
    engine = PiperTTS()
    await engine.load(DEFAULT_VOICE)
    yield engine
    await engine.aclose()


def _samples(chunks: Iterable[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(chunks), dtype="<i2")


async def _collect(tts: PiperTTS, text: str, voice: Voice = DEFAULT_VOICE) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text, voice=voice)]


class SentenceSpy:
    """Wraps the real PiperVoice.synthesize to count rendered sentences and optionally hold the worker."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rendered = 0
        self.finished = threading.Event()
        self.release = threading.Event()
        self.release.set()
        original = PiperVoice.synthesize
        spy = self

        def synthesize(voice: PiperVoice, text: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                for chunk in original(voice, text, *args, **kwargs):
                    spy.rendered += 1
                    yield chunk
                    spy.release.wait(HANG_GUARD_S)
            finally:
                spy.finished.set()

        monkeypatch.setattr(PiperVoice, "synthesize", synthesize)


def test_joe_is_shipped_and_default() -> None:
    assert VOICES[0] is DEFAULT_VOICE
    model, config = resolve_model(DEFAULT_VOICE)
    assert model.name == "en_US-joe-medium.onnx" and model.is_file()
    assert config.is_file()


async def test_synthesizes_audible_speech_at_24k(tts: PiperTTS) -> None:
    chunks = await _collect(tts, SENTENCE)
    assert tts.sample_rate == 24_000
    assert chunks and all(len(chunk) % 2 == 0 for chunk in chunks)
    audio = _samples(chunks).astype(np.float64)
    assert np.sqrt(np.mean(audio**2)) > 500  # int16 RMS: clearly not silence
    assert 500 <= pcm_duration_ms(b"".join(chunks), tts.sample_rate) <= 5000


async def test_output_is_resampled_from_22050_to_24000() -> None:
    # Without noise Piper's durations are deterministic, so lengths compare exactly up to the ratio.
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    voice = PiperVoice.load(*resolve_model(DEFAULT_VOICE))
    native = sum(len(c.audio_float_array) for c in voice.synthesize(SENTENCE, syn_config=quiet))
    engine = PiperTTS(synthesis=quiet)
    try:
        ours = len(_samples(await _collect(engine, SENTENCE)))
    finally:
        await engine.aclose()
    assert voice.config.sample_rate == 22_050
    assert ours == pytest.approx(native * 24_000 / 22_050, abs=2)


async def test_streams_first_sentence_before_the_rest_are_rendered(
    tts: PiperTTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SentenceSpy(monkeypatch)
    spy.release.clear()  # the worker holds after its first sentence until we have the audio
    stream = tts.synthesize(MANY, voice=DEFAULT_VOICE)
    try:
        first = await asyncio.wait_for(anext(stream), HANG_GUARD_S)
        assert spy.rendered == 1
        assert pcm_duration_ms(first, tts.sample_rate) > 300
        spy.release.set()
        rest = [chunk async for chunk in stream]
    finally:
        spy.release.set()
        await stream.aclose()
    assert spy.rendered == 8
    assert len(rest) == 7  # one chunk per sentence


async def test_closing_the_stream_stops_the_worker(tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SentenceSpy(monkeypatch)
    spy.release.clear()  # hold the worker after sentence 1, so "stopped early" is exact, not a race
    async with contextlib.aclosing(tts.synthesize(MANY, voice=DEFAULT_VOICE)) as stream:
        await asyncio.wait_for(anext(stream), HANG_GUARD_S)
    spy.release.set()
    assert await asyncio.to_thread(spy.finished.wait, HANG_GUARD_S)
    assert spy.rendered == 1


async def test_cancelling_the_consumer_task_stops_the_worker(tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SentenceSpy(monkeypatch)
    spy.release.clear()
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in tts.synthesize(MANY, voice=DEFAULT_VOICE):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), HANG_GUARD_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spy.release.set()
    assert await asyncio.to_thread(spy.finished.wait, HANG_GUARD_S)
    assert spy.rendered == 1


def test_stop_aborts_a_running_inference() -> None:
    # The job's RunOptions reach onnxruntime, so stop() can end even a long sentence midway.
    voice = PiperVoice.load(*resolve_model(DEFAULT_VOICE))
    job = _Job()
    job.stop()
    with pytest.raises(Exception, match=r"(?i)terminat"):
        list(job.bind(voice).synthesize(SENTENCE))


async def test_concurrent_syntheses_both_complete(tts: PiperTTS) -> None:
    one, two = await asyncio.gather(_collect(tts, "Good morning."), _collect(tts, "Good evening, friend."))
    assert len(_samples(one)) > 0 and len(_samples(two)) > 0


async def test_blank_text_yields_nothing(tts: PiperTTS) -> None:
    assert await _collect(tts, "   ") == []


async def test_wrong_engine_missing_package_and_missing_file_raise_tts_error(tts: PiperTTS, tmp_path: Path) -> None:
    with pytest.raises(TTSError, match="engine"):
        await _collect(tts, SENTENCE, dataclasses.replace(DEFAULT_VOICE, engine="other"))
    with pytest.raises(TTSError, match="pip install no-such-voice-pkg"):
        await _collect(tts, SENTENCE, dataclasses.replace(DEFAULT_VOICE, package="no_such_voice_pkg"))
    with pytest.raises(TTSError, match="no Piper model"):
        await _collect(tts, SENTENCE, dataclasses.replace(DEFAULT_VOICE, package="", model=str(tmp_path / "x")))


async def test_a_broken_model_file_raises_tts_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    (tmp_path / "bad.onnx.json").write_text("{}")
    engine = PiperTTS()
    try:
        with pytest.raises(TTSError, match="Could not load"):
            await _collect(
                engine, SENTENCE, dataclasses.replace(DEFAULT_VOICE, package="", model=str(tmp_path / "bad"))
            )
    finally:
        await engine.aclose()


def test_registry_creates_piper_lazily() -> None:
    engine = create_tts("piper", max_workers=1)
    assert isinstance(engine, PiperTTS)
    checked: TextToSpeech = engine
    assert checked.sample_rate == 24_000
    with pytest.raises(TTSError, match="Unknown TTS provider"):
        create_tts("nope")


def test_registry_gives_install_hint_for_missing_dependency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "openevi_fake_provider.py").write_text("import definitely_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PROVIDERS, "fake", Provider("openevi_fake_provider:Fake", "pip install fake-extra"))
    with pytest.raises(TTSError, match=r"definitely_not_installed_xyz.*pip install fake-extra"):
        create_tts("fake")
    sys.modules.pop("openevi_fake_provider", None)


def _voice(name: str) -> Voice:
    return next(voice for voice in VOICES if voice.name == name)


def _median_f0(chunks: list[bytes]) -> float:
    import pyworld

    audio = _samples(chunks).astype(np.float64) / 32768.0
    f0, times = pyworld.dio(audio, 24_000, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    f0 = pyworld.stonemask(audio, f0, times, 24_000)
    return float(np.median(f0[f0 > 0]))


async def test_derived_voices_speak_joes_model_higher_or_lower(tts: PiperTTS) -> None:
    joe = _median_f0(await _collect(tts, SENTENCE))
    female = _median_f0(await _collect(tts, SENTENCE, _voice("Nora")))
    deep = _median_f0(await _collect(tts, SENTENCE, _voice("Hugo")))
    assert female > 1.3 * joe
    assert deep < 0.8 * joe


async def test_a_shifted_sentence_streams_in_blocks(tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SentenceSpy(monkeypatch)
    chunks = await _collect(tts, SENTENCE, _voice("Nora"))
    assert spy.rendered == 1 and len(chunks) >= 2  # one sentence, several blocks
    assert pcm_duration_ms(chunks[0], tts.sample_rate) < 500


async def test_a_voices_pace_scales_piper_length() -> None:
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    engine = PiperTTS(synthesis=quiet)
    try:
        joe = len(_samples(await _collect(engine, SENTENCE)))
        hugo = _voice("Hugo")
        slower = len(_samples(await _collect(engine, SENTENCE, hugo)))
    finally:
        await engine.aclose()
    # Piper rounds each phoneme's length, so the sentence grows by less than the ratio, but clearly
    assert hugo.pace == 1.08 and joe * 1.02 < slower < joe * 1.08
