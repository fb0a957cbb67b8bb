"""Make an utterance's recording conditions irrelevant before its voice is measured.

Three things change the voice features without changing the emotion (docs/prosody.md,
"Recording conditions"):

- **silence around the speech**: a turn cut with 300 ms of room tone on either side has fewer
  syllables per second and more "pause" than the same words cut tightly. Leading and trailing frames
  more than 40 dB under the loudest 10 ms are dropped, 50 ms kept (relative only: an absolute floor
  would trim a quiet recording differently from the same one louder);
- **the channel's band**: a phone call (8 kHz, G.711) carries nothing above ~3.6 kHz, a browser
  (16 kHz) carries up to 8 kHz, so spectral balance would read a caller as duller (calmer) than the
  same person on the web. Every input is reduced to the telephone band (through 8 kHz and back with
  soxr's anti-alias filter), so both are measured the same way;
- **the recording level**: microphone gain and distance set it, not emotion (the same recording 12 dB
  quieter read as tired). The speech is scaled so that its active frames' RMS is ACTIVE_LEVEL_DBFS.
"""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["ACTIVE_LEVEL_DBFS", "BAND_RATE", "condition"]

BAND_RATE = 8_000  # the telephone band every input is measured in
ACTIVE_LEVEL_DBFS = -26.0  # ITU-T P.56's usual active speech level
_FRAME_S = 0.01
_EDGE_RANGE_DB = 40.0
_ACTIVE_RANGE_DB = 30.0  # frames within this of the loudest count as active speech for the level
_MARGIN_S = 0.05


def _frame_db(audio: np.ndarray, frame: int) -> np.ndarray:
    n = len(audio) // frame
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    return np.asarray(10.0 * np.log10(np.maximum(np.mean(frames * frames, axis=1), 1e-12)))


def _trim(audio: np.ndarray, rate: int) -> np.ndarray:
    frame = max(1, int(_FRAME_S * rate))
    db = _frame_db(audio, frame)
    if db.size == 0:
        return audio
    loud = np.flatnonzero(db > float(db.max()) - _EDGE_RANGE_DB)
    if loud.size == 0:
        return audio
    margin = int(_MARGIN_S * rate)
    start = max(0, int(loud[0]) * frame - margin)
    end = min(len(audio), (int(loud[-1]) + 1) * frame + margin)
    return audio[start:end]


def _level(audio: np.ndarray, rate: int) -> np.ndarray:
    frame = max(1, int(_FRAME_S * rate))
    db = _frame_db(audio, frame)
    if db.size == 0:
        return audio
    active = db[db > float(db.max()) - _ACTIVE_RANGE_DB]
    active_db = 10.0 * np.log10(np.mean(10.0 ** (active / 10.0)))
    return np.asarray(audio * 10.0 ** ((ACTIVE_LEVEL_DBFS - active_db) / 20.0), dtype=np.float32)


def condition(audio: np.ndarray, rate: int) -> np.ndarray:
    """`audio` (float mono at `rate`) trimmed, in the telephone band and at the fixed active level."""
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    if samples.size == 0:
        return samples
    if rate > BAND_RATE:
        narrow = soxr.resample(samples, rate, BAND_RATE, quality="HQ")
        samples = np.asarray(soxr.resample(narrow, BAND_RATE, rate, quality="HQ"), dtype=np.float32)
    return _level(_trim(samples, rate), rate)
