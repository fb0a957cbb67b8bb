"""The acoustic emotion model on real openSMILE features: ranges, edge cases, directions, words, registry."""

from __future__ import annotations

import functools
import importlib
import io
import math
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import soxr  # type: ignore[import-untyped]

from openevi.speech.prosody import acoustic
from openevi.speech.prosody.acoustic import EMOTION_VAD, FLOOR, AcousticProsody, analyze, project, text_valence
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.prosody.registry import PROVIDERS, ProsodyError, create_prosody

RATE = 16_000
SENTENCE = "I think we should go to the park this afternoon and see what happens."
# espeak-ng options: amplitude (0-200, default 100), pitch (0-99, default 50), speed (words/min, default 175).
AROUSED = ("-a", "200", "-p", "85", "-s", "240")
SUBDUED = ("-a", "30", "-p", "15", "-s", "100")

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@functools.lru_cache(maxsize=16)
def _espeak(text: str, options: tuple[str, ...]) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "--stdout", *options, text], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        rate = w.getframerate()
    return np.asarray(soxr.resample(pcm, rate, RATE), dtype=np.float32)


def speak(text: str = SENTENCE, options: tuple[str, ...] = ()) -> np.ndarray:
    return _espeak(text, options).copy()


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[AcousticProsody]:
    prosody = AcousticProsody()
    await prosody.load()
    yield prosody
    await prosody.aclose()


def assert_valid(scores: dict[str, float]) -> None:
    assert list(scores) == list(EMOTIONS)
    assert len(scores) == 48
    for name, value in scores.items():
        assert isinstance(value, float), name
        assert math.isfinite(value), name
        assert 0.0 <= value <= 1.0, (name, value)


def test_coordinates_cover_every_emotion() -> None:
    assert set(EMOTION_VAD) == set(EMOTIONS)
    centres = np.array(list(EMOTION_VAD.values()))
    # Standardised over the 48: mean 0, spread 1 per axis.
    assert np.allclose(centres.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(centres.std(axis=0), 1.0, atol=1e-9)


@pytest.mark.parametrize("name", ["joy", "sadness", "anger", "calmness", "fear", "boredom"])
def test_an_emotions_own_coordinates_score_it_highest(name: str) -> None:
    scores = project(EMOTION_VAD[name], with_text=True)
    assert max(scores, key=scores.__getitem__) == name
    assert scores[name] == pytest.approx(1.0)


def _noise(seconds: float, level: float) -> np.ndarray:
    return (np.random.default_rng(7).standard_normal(int(seconds * RATE)) * level).astype(np.float32)


@needs_espeak
async def test_speech_scores_are_valid_and_not_flat(model: AcousticProsody) -> None:
    scores = await model.score(speak())
    assert_valid(scores)
    assert max(scores.values()) > 0.3
    assert max(scores.values()) - min(scores.values()) > 0.2


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(np.zeros(3 * RATE, dtype=np.float32), id="silence"),
        pytest.param(_noise(3.0, 1e-4), id="near-silence"),
        pytest.param(np.zeros(RATE // 20, dtype=np.float32), id="50ms-silence"),
        pytest.param(_noise(0.05, 0.3), id="50ms-noise"),
        pytest.param(np.zeros(0, dtype=np.float32), id="empty"),
    ],
)
async def test_no_speech_gives_low_flat_scores(model: AcousticProsody, audio: np.ndarray) -> None:
    scores = await model.score(audio, text="what a wonderful day")
    assert_valid(scores)
    assert set(scores.values()) == {FLOOR}


async def test_noise_gives_valid_low_scores(model: AcousticProsody) -> None:
    result = await model.analyze(_noise(3.0, 0.3))
    assert_valid(result.scores)
    # White noise has almost no voiced frames, so the scores stay near the floor.
    assert result.confidence < 0.5
    assert max(result.scores.values()) < 0.5


@needs_espeak
async def test_short_speech_clip_and_odd_samples(model: AcousticProsody) -> None:
    assert_valid(await model.score(speak()[: RATE // 20]))
    # Clipped, out-of-range and NaN samples must not break extraction or leak NaN.
    loud = speak() * 4.0
    loud[100:200] = np.nan
    loud[300] = np.inf
    assert_valid(await model.score(loud))
    assert_valid(await model.score(speak().astype(np.float64)))


@needs_espeak
async def test_deterministic(model: AcousticProsody) -> None:
    audio = speak()
    assert await model.score(audio, text="fine") == await model.score(audio.copy(), text="fine")


@needs_espeak
async def test_loud_fast_high_speech_scores_higher_on_arousal(model: AcousticProsody) -> None:
    aroused = await model.analyze(speak(options=AROUSED))
    subdued = await model.analyze(speak(options=SUBDUED))
    assert_valid(aroused.scores)
    assert_valid(subdued.scores)
    assert aroused.vad[1] > subdued.vad[1] + 1.0  # arousal, in standard units
    for name in ("excitement", "anger", "surprise_positive", "ecstasy"):
        assert aroused.scores[name] > subdued.scores[name], name
    for name in ("calmness", "boredom", "tiredness"):
        assert subdued.scores[name] > aroused.scores[name], name
    top_subdued = sorted(subdued.scores, key=subdued.scores.__getitem__, reverse=True)[:5]
    assert {"boredom", "calmness", "tiredness", "sadness"} & set(top_subdued)


@needs_espeak
async def test_words_shift_valence(model: AcousticProsody) -> None:
    audio = speak()
    happy = await model.analyze(audio, text="I love this, what a wonderful happy day.")
    unhappy = await model.analyze(audio, text="I hate this, what a terrible awful day.")
    neutral = await model.analyze(audio, text="The table is next to the door.")
    assert happy.vad[0] > neutral.vad[0] > unhappy.vad[0]
    assert happy.vad[1:] == unhappy.vad[1:] == neutral.vad[1:]  # words move valence only
    assert happy.scores["joy"] > unhappy.scores["joy"]
    assert unhappy.scores["sadness"] > happy.scores["sadness"]
    assert neutral.text_valence is None


@needs_espeak
async def test_words_can_be_switched_off() -> None:
    prosody = AcousticProsody(use_text=False)
    try:
        audio = speak()
        assert await prosody.score(audio, text="I love this wonderful day") == await prosody.score(audio)
    finally:
        await prosody.aclose()


def test_text_valence() -> None:
    assert text_valence("the table is next to the door") is None
    assert text_valence("") is None
    happy = text_valence("I love this wonderful day")
    assert happy is not None and happy > 0.5
    hateful = text_valence("I hate this terrible day")
    assert hateful is not None and hateful < -0.5
    # Inflections reach the lemma; negation flips polarity.
    assert (text_valence("she loved it") or 0) > 0
    assert (text_valence("I am not happy") or 0) < 0
    assert (text_valence("I didn't enjoy it") or 0) < 0


def test_cues_survive_missing_and_nonfinite_features() -> None:
    z = acoustic.cues({"f0_mean": math.nan, "loudness": 0.0, "hnr": math.inf})
    assert all(math.isfinite(v) and -3 <= v <= 3 for v in z.values())
    assert_valid(project(acoustic.vad_from_cues(z), confidence=1.0))


def test_analyze_is_synchronous_and_reports_its_steps() -> None:
    audio = _noise(1.0, 0.0)
    result = analyze(audio)
    assert result.confidence == 0.0 and result.vad == (0.0, 0.0, 0.0)


def test_registry_builds_the_acoustic_model() -> None:
    model = create_prosody("acoustic", max_workers=1)
    assert isinstance(model, AcousticProsody)
    assert model.sample_rate == RATE


def test_registry_unknown_name() -> None:
    with pytest.raises(ProsodyError, match="Unknown prosody provider 'nope'; known: acoustic"):
        create_prosody("nope")


def test_registry_missing_dependency_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name == "openevi.speech.prosody.acoustic":
            raise ModuleNotFoundError("No module named 'opensmile'", name="opensmile")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ProsodyError, match=r"needs 'opensmile'.*pip install opensmile==2\.6\.0"):
        create_prosody("acoustic")
    assert "acoustic" in PROVIDERS
