"""Smart Turn's input: Whisper log-mel features of the last 8 s of 16 kHz audio, front-padded.

The model was trained on `transformers.WhisperFeatureExtractor(chunk_length=8)` features with
`do_normalize=True`: the (zero-padded) 8 s window is scaled to zero mean and unit variance *before*
the spectrogram; 80 mel bands, 25 ms windows every 10 ms, the last STFT frame dropped (801 → 800).
faster-whisper's extractor computes the same log-mel spectrogram (same Slaney filterbank, periodic
Hann window, reflect padding, clamp to max - 8 dB, (x + 4) / 4); only the waveform normalisation and
the window are ours.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

__all__ = ["FRAMES", "MEL_BANDS", "SAMPLE_RATE", "WINDOW_SAMPLES", "last_window", "log_mel"]

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 8
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
MEL_BANDS = 80
FRAMES = 800  # 10 ms hops over 8 s
_NORMALIZE_EPS = 1e-7


@cache
def _extractor() -> FeatureExtractor:
    return FeatureExtractor(feature_size=MEL_BANDS, sampling_rate=SAMPLE_RATE, chunk_length=WINDOW_SECONDS)


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of `audio`, zeros in front when shorter (the end of the turn stays at the end)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size >= WINDOW_SAMPLES:
        return audio[-WINDOW_SAMPLES:]
    return np.concatenate((np.zeros(WINDOW_SAMPLES - audio.size, dtype=np.float32), audio))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Model input of shape (80, 800), float32, for 16 kHz float audio of any length."""
    window = last_window(audio)
    normalized = (window - window.mean()) / np.sqrt(window.var() + _NORMALIZE_EPS)
    features = _extractor()(normalized.astype(np.float32), padding=0)
    return np.ascontiguousarray(features[:, :FRAMES], dtype=np.float32)
