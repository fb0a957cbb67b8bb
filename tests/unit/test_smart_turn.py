"""Smart Turn v3.2: its input features, the model file taken from the pipecat-ai wheel, the real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openevi.speech.turn import features
from openevi.speech.turn.model_file import MODEL_SHA256, ModelFileError, _sha256, default_path, verified
from openevi.speech.turn.registry import TurnModelError, create_turn_model
from openevi.speech.turn.smart_turn import SmartTurnModel

RATE = features.SAMPLE_RATE


def _tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.5, 8.0, 11.0])
def test_features_are_80_mel_bands_by_800_frames(seconds: float) -> None:
    mel = features.log_mel(_tone(seconds))
    assert mel.shape == (features.MEL_BANDS, features.FRAMES) == (80, 800)
    assert mel.dtype == np.float32 and np.isfinite(mel).all()


def test_short_audio_is_padded_in_front_so_the_turn_ends_at_the_end() -> None:
    mel = features.log_mel(_tone(1.0))
    padding, speech = mel[:, :650], mel[:, -90:]  # 7 s of zeros, then the tone (frames are 10 ms)
    assert np.ptp(padding) == 0.0  # padding is one flat floor value
    assert speech.max() > padding.max() + 0.5  # the tone's energy is at the end
    window = features.last_window(_tone(1.0))
    assert window.size == features.WINDOW_SAMPLES and not window[: 7 * RATE].any()


def test_long_audio_keeps_its_last_eight_seconds() -> None:
    long = np.concatenate((_tone(4.0, 440.0), _tone(8.0, 220.0)))
    assert np.array_equal(features.log_mel(long), features.log_mel(long[-features.WINDOW_SAMPLES :]))
    assert not np.array_equal(features.log_mel(long), features.log_mel(long[: features.WINDOW_SAMPLES]))


def test_features_are_independent_of_the_level() -> None:
    """The waveform is normalised before the spectrogram, as the model was trained."""
    tone = _tone(2.0)
    assert np.allclose(features.log_mel(tone), features.log_mel(tone * 0.05), atol=1e-3)


def test_the_shipped_model_file_is_pipecats() -> None:
    path = verified()
    assert path == default_path() and _sha256(path) == MODEL_SHA256


def test_a_missing_model_file_names_the_command_that_fetches_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"openevi\.speech\.turn\.model_file"):
        SmartTurnModel(model_path=tmp_path / "absent.onnx")


async def test_the_real_model_loads_and_answers_a_probability() -> None:
    model = create_turn_model("smart-turn")
    assert isinstance(model, SmartTurnModel)
    try:
        await model.load()
        probability = await model.probability(_tone(1.5))
        assert 0.0 <= probability <= 1.0
    finally:
        await model.aclose()


def test_the_silence_detector_has_no_model_and_unknown_names_fail() -> None:
    assert create_turn_model("silence") is None
    with pytest.raises(TurnModelError, match="smart-turn"):
        create_turn_model("magic")
