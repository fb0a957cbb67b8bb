"""Whisper ASR with the real packaged base model: accuracy on espeak speech, cancellation, assembly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from openevi.speech.asr.registry import ASRError, create_asr
from openevi.speech.asr.whisper import WhisperASR, assemble_packaged_model
from tests.support import real_speech
from tests.support.speech import SENTENCES, heard_share, speak, word_error_rate

# Synthetic speech is harder than real voices for Whisper base; measured WER is ~0.05-0.1.
MAX_WER = 0.25


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_packaged_model(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="module")
async def asr(model_dir: Path) -> AsyncIterator[WhisperASR]:
    recognizer = create_asr("whisper", cache_dir=model_dir)
    assert isinstance(recognizer, WhisperASR)
    await recognizer.load()
    yield recognizer
    await recognizer.aclose()


async def test_three_sentences(asr: WhisperASR) -> None:
    reference = " ".join(SENTENCES[:3])
    audio = np.concatenate([speak(s) for s in SENTENCES[:3]])
    transcript = await asr.transcribe(audio)
    assert word_error_rate(reference, transcript.text) < MAX_WER, transcript.text
    assert transcript.language == "en"
    assert asr.capabilities.sample_rate == 16_000 and not asr.capabilities.streaming


async def test_full_30s_window_also_works(model_dir: Path) -> None:
    recognizer = WhisperASR(cache_dir=model_dir, window_s=None)
    try:
        text = (await recognizer.transcribe(speak(SENTENCES[5]))).text
    finally:
        await recognizer.aclose()
    assert word_error_rate(SENTENCES[5], text) < MAX_WER, text


async def test_british_voice_and_prompt(asr: WhisperASR) -> None:
    sentence = SENTENCES[3]
    text = (await asr.transcribe(speak(sentence, voice="en-gb"), prompt="A question about the weather.")).text
    assert word_error_rate(sentence, text) < MAX_WER, text


async def test_empty_audio(asr: WhisperASR) -> None:
    assert (await asr.transcribe(np.zeros(0, dtype=np.float32))).text == ""


async def test_cancel_returns_and_model_stays_usable(asr: WhisperASR) -> None:
    audio = np.concatenate([speak(s) for s in SENTENCES[:4]])
    task = asyncio.create_task(asr.transcribe(audio))
    await asyncio.sleep(0)  # let it reach the worker thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = (await asr.transcribe(speak(SENTENCES[6]))).text
    assert word_error_rate(SENTENCES[6], text) < MAX_WER, text


async def test_event_loop_runs_during_transcription(asr: WhisperASR) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await asr.transcribe(speak(SENTENCES[1]))
    finally:
        task.cancel()
    assert ticks > 0


def test_assembly_is_idempotent_and_follows_the_stamp(model_dir: Path) -> None:
    model = model_dir / "model.bin"
    before = model.stat().st_mtime_ns
    assemble_packaged_model(model_dir)
    assert model.stat().st_mtime_ns == before
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (model_dir / name).is_file()
    stamp = model_dir / "openevi-source.json"
    source = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**source, "part1": "0.0.0"}))  # as if the package was upgraded
    assemble_packaged_model(model_dir)
    assert json.loads(stamp.read_text()) == source
    assert model.stat().st_size == source["size"]


def test_registry_errors() -> None:
    with pytest.raises(ASRError, match="Unknown ASR provider"):
        create_asr("nope")


@pytest.fixture(scope="module")
async def detecting(model_dir: Path) -> AsyncIterator[WhisperASR]:
    recognizer = WhisperASR(cache_dir=model_dir, language=None)
    await recognizer.load()
    yield recognizer
    await recognizer.aclose()


@pytest.mark.parametrize(("speaker", "code"), [
    ("asterisk-fr-june", "fr"), ("asterisk-it-carlo", "it"), ("asterisk-en-allison", "en"),
])  # fmt: skip
async def test_detects_the_language_of_real_speech_and_keeps_its_words(
    detecting: WhisperASR, speaker: str, code: str
) -> None:
    try:
        prompts = real_speech.utterances(speaker=speaker, min_seconds=2.5, max_seconds=8.0)
    except real_speech.FetchError as exc:  # a missing corpus is a failure, never a skip
        pytest.fail(f"could not fetch the real speech corpus: {exc}")
    for prompt in sorted(prompts, key=lambda u: (-u.duration, u.id))[:3]:
        transcript = await detecting.transcribe(prompt.load())
        assert transcript.language == code, (prompt.id, transcript)
        assert heard_share(prompt.text, transcript.text) >= 0.6, (prompt.text, transcript.text)


async def test_an_unsure_detection_uses_the_fallback_language(model_dir: Path) -> None:
    unsure = WhisperASR(cache_dir=model_dir, language=None, detect_threshold=1.01, fallback_language="it")
    try:
        transcript = await unsure.transcribe(speak(SENTENCES[0]))
    finally:
        await unsure.aclose()
    assert transcript.language == "it"  # no language is ever 101 % sure: the fallback is used


async def test_a_pinned_language_is_not_detected(asr: WhisperASR) -> None:
    french = max(real_speech.utterances(speaker="asterisk-fr-june", min_seconds=2.5), key=lambda u: (u.duration, u.id))
    assert (await asr.transcribe(french.load())).language == "en"  # OPENEVI_ASR_LANGUAGE=en keeps it English


async def test_detecting_the_language_costs_no_second_encoder_pass(
    detecting: WhisperASR, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[tuple[int, ...]] = []
    original = WhisperModel.encode

    def counting(model: WhisperModel, features: np.ndarray) -> object:
        encoded.append(features.shape)
        return original(model, features)

    monkeypatch.setattr(WhisperModel, "encode", counting)
    transcript = await detecting.transcribe(speak(SENTENCES[1]))
    assert transcript.language == "en" and word_error_rate(SENTENCES[1], transcript.text) < MAX_WER
    assert len(encoded) == 1  # detection's pass is the transcription's
    transcript = await detecting.transcribe(speak(SENTENCES[2]))
    assert len(encoded) == 2  # a new utterance is encoded afresh
    assert word_error_rate(SENTENCES[2], transcript.text) < MAX_WER
