"""The acoustic emotion model on its numpy voice features: ranges, edge cases, directions, words, registry."""

from __future__ import annotations

import functools
import importlib
import io
import math
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import soxr

from openevi.speech.prosody import acoustic, features
from openevi.speech.prosody.acoustic import EMOTION_VAD, FLOOR, AcousticProsody, analyze, project, text_valence
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.prosody.registry import PROVIDERS, ProsodyError, create_prosody

RATE = 16_000
SENTENCE = "I think we should go to the park this afternoon and see what happens."
# espeak-ng options: amplitude (0-200, default 100), pitch (0-99, default 50), speed (words/min, default 175).
AROUSED = ("-a", "200", "-p", "85", "-s", "240")
SUBDUED = ("-a", "30", "-p", "15", "-s", "100")


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


async def test_short_speech_clip_and_odd_samples(model: AcousticProsody) -> None:
    assert_valid(await model.score(speak()[: RATE // 20]))
    # Clipped, out-of-range and NaN samples must not break extraction or leak NaN.
    loud = speak() * 4.0
    loud[100:200] = np.nan
    loud[300] = np.inf
    assert_valid(await model.score(loud))
    assert_valid(await model.score(speak().astype(np.float64)))


async def test_deterministic(model: AcousticProsody) -> None:
    audio = speak()
    assert await model.score(audio, text="fine") == await model.score(audio.copy(), text="fine")


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


# Calm read speech is judged on real recordings (tests/unit/test_prosody_real.py): the scorer is
# calibrated on human voices, against which espeak-ng's flat default voice is not "neutral".


async def test_expressive_speech_scores_higher_than_neutral(model: AcousticProsody) -> None:
    # Directions only: espeak-ng's default voice lies between its excited and its flat rendering, and
    # both are further from neutral human speech (the origin) than neutral speech itself.
    neutral = await model.analyze(speak())
    aroused = await model.analyze(speak(options=AROUSED))
    subdued = await model.analyze(speak(options=SUBDUED))
    assert aroused.vad[1] > neutral.vad[1] > subdued.vad[1]
    assert acoustic.intensity((0.0, 0.0, 0.0)) == pytest.approx(acoustic.NEUTRAL_CEILING)
    assert acoustic.intensity(aroused.vad) > acoustic.NEUTRAL_CEILING
    assert acoustic.intensity(subdued.vad) > acoustic.NEUTRAL_CEILING


def test_pitch_level_is_relative_to_the_nearer_register() -> None:
    low, high = acoustic.REFERENCE.f0_registers_st
    assert acoustic.pitch_level(low) == pytest.approx(0.0, abs=0.02)  # the other register leaks ~1 %
    assert acoustic.pitch_level(high) == pytest.approx(0.0, abs=0.02)
    assert acoustic.pitch_level(low + 3) > 0.9  # a raised low voice
    assert acoustic.pitch_level(high - 3) < -0.9  # a lowered high voice
    assert acoustic.pitch_level(low - 4) < acoustic.pitch_level(low - 2) < 0


def test_mild_words_stay_neutral_strong_words_move() -> None:
    assert acoustic.text_shift(None) == 0.0
    assert acoustic.text_shift(0.2) == 0.0  # "please", "like": polite, not emotional
    assert acoustic.text_shift(0.9) > 1.5
    assert acoustic.text_shift(-0.9) == -acoustic.text_shift(0.9)


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
    with pytest.raises(ProsodyError, match="Unknown prosody provider 'nope'; known: acoustic, onnx, opensmile"):
        create_prosody("nope")


@pytest.mark.parametrize(
    ("provider", "module", "missing", "install"),
    [
        ("acoustic", "openevi.speech.prosody.acoustic", "vaderSentiment", r"pip install vaderSentiment==3\.3\.2"),
        (
            "opensmile",
            "openevi.speech.prosody.egemaps",
            "opensmile",
            r"pip install 'openevi\[opensmile\]'.*non-commercial",
        ),
    ],
)
def test_registry_missing_dependency_names_the_install(
    monkeypatch: pytest.MonkeyPatch, provider: str, module: str, missing: str, install: str
) -> None:
    real = importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name == module:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ProsodyError, match=rf"needs '{missing}'.*{install}"):
        create_prosody(provider)
    assert provider in PROVIDERS


def test_default_path_does_not_import_opensmile() -> None:
    # A fresh interpreter: this test process may have imported opensmile for the optional provider.
    code = (
        "import sys; from openevi.speech.prosody.registry import create_prosody; create_prosody('acoustic'); "
        "assert not {'opensmile', 'pandas', 'nrclex'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


async def test_optional_opensmile_provider() -> None:
    """The opt-in provider works where its extra is installed, and says how to get it elsewhere."""
    try:
        import opensmile  # noqa: F401
    except ImportError:
        with pytest.raises(ProsodyError, match=r"openevi\[opensmile\]"):
            create_prosody("opensmile")
        return
    prosody = create_prosody("opensmile")
    try:
        aroused = await prosody.analyze(speak(options=AROUSED))  # type: ignore[attr-defined]
        subdued = await prosody.analyze(speak(options=SUBDUED))  # type: ignore[attr-defined]
        assert_valid(aroused.scores)
        assert aroused.vad[1] > subdued.vad[1] + 1.0
        assert_valid(await prosody.score(np.zeros(RATE // 20, dtype=np.float32)))
    finally:
        await prosody.aclose()  # type: ignore[attr-defined]


# --- the voice features themselves -------------------------------------------------------------


def _tone(freq: float, level: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _pulse_train(jitter: float, seconds: float = 1.0, f0: float = 160.0) -> np.ndarray:
    """Glottal-like pulses through one decaying resonance; `jitter` is the relative s.d. of each period.

    160 Hz is a whole number of samples (100), so the clean train has no rounding jitter.
    """
    rng = np.random.default_rng(3)
    pulses = np.zeros(int(seconds * RATE))
    pos = 50.0
    while pos < len(pulses):
        pulses[int(pos)] = 1.0
        pos += RATE / f0 * (1.0 + jitter * rng.standard_normal())
    n = np.arange(200)
    ring = np.exp(-n / 25.0) * np.sin(2 * np.pi * 600.0 * n / RATE)
    return (0.3 * np.convolve(pulses, ring)[: len(pulses)]).astype(np.float32)


@pytest.mark.parametrize("freq", [100.0, 200.0, 350.0])
def test_pitch_of_a_tone(freq: float) -> None:
    f = features.extract(_tone(freq, 0.3))
    hz = 27.5 * 2 ** (f["f0_mean"] / 12)
    assert hz == pytest.approx(freq, rel=0.01)
    assert f["f0_range"] < 0.1  # a steady tone has no pitch range
    assert f["voiced_s"] > 0.9


def test_louder_signal_is_louder() -> None:
    quiet = features.extract(_tone(200.0, 0.05))["loudness"]
    loud = features.extract(_tone(200.0, 0.5))["loudness"]
    # +20 dB is about four times as loud on a sone-like scale (doubling per 10 dB).
    assert loud / quiet == pytest.approx(4.0, rel=0.1)


def test_jittered_pulses_have_more_jitter_and_less_hnr() -> None:
    clean = features.extract(_pulse_train(0.0))
    jittered = features.extract(_pulse_train(0.02))
    assert clean["jitter"] < 0.002
    assert jittered["jitter"] > 0.01
    assert jittered["jitter"] > 5 * clean["jitter"]
    assert jittered["hnr"] < clean["hnr"]
    assert 27.5 * 2 ** (clean["f0_mean"] / 12) == pytest.approx(160.0, rel=0.01)


def test_brighter_pulses_have_higher_alpha_ratio() -> None:
    dull = _pulse_train(0.0)
    bright = dull + np.convolve(dull, [1.0, -1.0], mode="same")  # a first difference adds high frequencies
    assert features.extract(bright)["alpha_ratio"] > features.extract(dull)["alpha_ratio"]
    assert features.extract(bright)["hammarberg"] < features.extract(dull)["hammarberg"]


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(np.zeros(3 * RATE, dtype=np.float32), id="silence"),
        pytest.param(_noise(3.0, 0.3), id="noise"),
        pytest.param(_noise(0.05, 0.3), id="50ms-noise"),
        pytest.param(np.zeros(0, dtype=np.float32), id="empty"),
        pytest.param(np.clip(_tone(180.0, 3.0), -1, 1), id="clipped-tone"),
        pytest.param(np.full(RATE, np.nan, dtype=np.float32), id="nan"),
    ],
)
def test_features_are_always_finite(audio: np.ndarray) -> None:
    f = features.extract(audio)
    assert list(f) == list(features.FEATURE_NAMES)
    assert all(math.isfinite(v) for v in f.values()), f


def test_noise_and_silence_are_unvoiced() -> None:
    assert features.extract(_noise(2.0, 0.3))["voiced_s"] < 0.2
    assert features.extract(np.zeros(RATE, dtype=np.float32))["voiced_s"] == 0.0


def test_speech_features_in_plausible_ranges() -> None:
    male, female = features.extract(speak()), features.extract(speak(options=("-v", "en-us+f3")))
    assert 90 < 27.5 * 2 ** (male["f0_mean"] / 12) < 140
    assert 160 < 27.5 * 2 ** (female["f0_mean"] / 12) < 260
    assert 3.0 < male["peaks_per_s"] < 8.0  # syllable rate of 175 words/min
    fast = features.extract(speak(options=("-s", "260")))
    slow = features.extract(speak(options=("-s", "110")))
    assert fast["peaks_per_s"] > slow["peaks_per_s"]
    assert fast["voiced_per_s"] > slow["voiced_per_s"]
