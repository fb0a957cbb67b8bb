"""Silero VAD with the real packaged ONNX model: speech vs silence and noise, per-chat state."""

from __future__ import annotations

import numpy as np
import pytest

from openevi.speech.vad.base import VoiceActivityDetector
from openevi.speech.vad.registry import PROVIDERS, VADError, create_vad
from openevi.speech.vad.silero import FRAME_SAMPLES, SileroVAD, default_model_path
from tests.support.speech import speak

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def vad() -> VoiceActivityDetector:
    return create_vad("silero")


def _probabilities(vad: VoiceActivityDetector, audio: np.ndarray) -> np.ndarray:
    stream = vad.stream()
    frames = len(audio) // FRAME_SAMPLES
    return np.array([stream.probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(frames)])


def test_model_ships_in_a_package() -> None:
    assert default_model_path().is_file()
    assert "silero" in PROVIDERS


def test_speech_above_silence_and_noise_below(vad: VoiceActivityDetector) -> None:
    assert (vad.sample_rate, vad.frame_samples) == (16_000, 512)
    rng = np.random.default_rng(0)
    speech = speak("The quick brown fox jumps over the lazy dog. Please call me tomorrow.")
    silence = np.zeros(16_000, dtype=np.float32)
    noise = rng.normal(0, 0.02, 16_000).astype(np.float32)
    probs = _probabilities(vad, np.concatenate([silence, noise, speech, silence]))
    per_second = 16_000 // FRAME_SAMPLES
    quiet = np.concatenate([probs[: 2 * per_second - 2], probs[-per_second + 8 :]])
    voiced = probs[2 * per_second + 5 : -per_second - 5]
    assert quiet.max() < THRESHOLD
    # espeak leaves short gaps between words; most speech frames must still be confident.
    assert np.mean(voiced > THRESHOLD) > 0.8
    assert np.median(voiced) > 0.9


def test_streams_are_independent(vad: VoiceActivityDetector) -> None:
    speech = speak("Hello there, how are you today?")
    frame = speech[8000 : 8000 + FRAME_SAMPLES]
    fresh = vad.stream()
    busy = vad.stream()
    for i in range(10):
        busy.probability(speech[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
    first = fresh.probability(frame)
    busy.reset()
    assert busy.probability(frame) == pytest.approx(first, abs=1e-6)


def test_wrong_frame_size(vad: VoiceActivityDetector) -> None:
    with pytest.raises(ValueError, match="512"):
        vad.stream().probability(np.zeros(480, dtype=np.float32))


def test_registry_unknown_and_options() -> None:
    with pytest.raises(VADError, match="Unknown VAD provider"):
        create_vad("nope")
    assert isinstance(create_vad("silero", onnx_threads=1), SileroVAD)


def test_onnxruntime_telemetry_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime's telemetry looked up a Microsoft host every 30-60 s; every model goes through
    openevi.speech.onnx_runtime, which switches it off on import."""
    import importlib

    import onnxruntime

    import openevi.speech.onnx_runtime as onnx_runtime
    import openevi.speech.tts.piper as piper
    import openevi.speech.vad.silero as silero

    calls: list[str] = []
    monkeypatch.setattr(onnxruntime, "disable_telemetry_events", lambda: calls.append("off"))
    importlib.reload(onnx_runtime)
    assert calls == ["off"]
    assert silero.onnxruntime is onnxruntime and piper.onnxruntime is onnxruntime
