"""Optional provider "opensmile": the same emotion model on openSMILE's eGeMAPSv02 features.

Install with `pip install 'openevi[opensmile]'`. openSMILE's binaries are under audEERING's research
licence (non-commercial use only, whatever the wheel's metadata says): do not enable this provider in a
commercial deployment without a licence from audEERING. See docs/prosody.md.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import opensmile  # imported here so the registry can name the install

from openevi.speech.prosody import features as voice
from openevi.speech.prosody.acoustic import AcousticProsody, Reference

__all__ = ["EGEMAPS", "OPENSMILE_REFERENCE", "OpenSmileProsody", "extract"]

# eGeMAPSv02 functional names for our feature names (a subset of the 88).
EGEMAPS: dict[str, str] = {
    "f0_mean": "F0semitoneFrom27.5Hz_sma3nz_amean",
    "f0_range": "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "loudness": "loudness_sma3_percentile80.0",
    "alpha_ratio": "alphaRatioV_sma3nz_amean",
    "hammarberg": "hammarbergIndexV_sma3nz_amean",
    "jitter": "jitterLocal_sma3nz_amean",
    "shimmer": "shimmerLocaldB_sma3nz_amean",
    "hnr": "HNRdBACF_sma3nz_amean",
    "voiced_per_s": "VoicedSegmentsPerSec",
    "peaks_per_s": "loudnessPeaksPerSec",
}

# The references the model was first calibrated with, in openSMILE's units (docs/prosody.md, "opensmile").
OPENSMILE_REFERENCE = Reference(
    f0_registers_st=(23.5, 35.0),  # openSMILE's F0 reads as ours on espeak-ng (25.9 vs 25.8 st)
    f0_register_sd=2.5,
    f0_range_st=(3.5, 1.5),
    loudness_p80=1.46,
    loudness_doublings_sd=0.75,
    alpha_ratio_db=(-7.6, 4.0),
    hammarberg_db=(14.7, 4.0),
    jitter=(0.02, 0.015),
    shimmer_db=(1.4, 0.4),
    hnr_db=(6.0, 3.0),
    voiced_per_s=(3.2, 0.8),
    peaks_per_s=(4.9, 1.0),
    pause_ratio=(0.05, 0.10),
)

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _smile() -> Any:
    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def extract(audio: np.ndarray, sample_rate: int = voice.SAMPLE_RATE) -> dict[str, float]:
    """Our feature names from openSMILE's functionals; pause ratio from our own frame levels."""
    with _lock:  # building the Smile object once; extraction itself is re-entrant
        smile = _smile()
    # openSMILE converts to int16 without clipping (values >= 1.0 would wrap around).
    clipped = np.clip(np.nan_to_num(audio), -1.0, 32767 / 32768).astype(np.float32)
    row = smile.process_signal(clipped, sample_rate).iloc[0]
    out = {name: float(row[column]) for name, column in EGEMAPS.items()}
    seconds = len(audio) / sample_rate
    out["voiced_s"] = float(row["VoicedSegmentsPerSec"] * row["MeanVoicedSegmentLengthSec"] * seconds)
    hop = sample_rate // 100
    n = len(clipped) // hop
    frames = clipped[: n * hop].astype(np.float64).reshape(max(n, 0), hop)
    frame_db = 10.0 * np.log10(np.maximum((frames * frames).mean(axis=1), 1e-12)) if n else np.full(1, -120.0)
    out["pause_ratio"] = voice.pause_ratio(frame_db)
    return out


class OpenSmileProsody(AcousticProsody):
    """AcousticProsody on openSMILE eGeMAPSv02 features (non-commercial licence: see the module docstring)."""

    default_reference: ClassVar[Reference] = OPENSMILE_REFERENCE

    def _extract(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        return extract(audio, sample_rate)
