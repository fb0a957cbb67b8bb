"""Read (neutral) human speech from the real speech corpus, split by speaker, and the channels it can go through.

The prosody Reference (openevi/speech/prosody/acoustic.py) was fitted on CALIBRATION speakers only
(`python -m benchmarks.prosody_real --fit`); HELD_OUT speakers check it did not just learn those
voices. docs/prosody.md says which recordings these are.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import soxr

from tests.support.real_speech import RATE, Utterance, utterances

__all__ = ["HELD_OUT", "NOT_NEUTRAL", "at_gain", "neutral_set", "phone_call"]

HELD_OUT = frozenset(
    {"asterisk-fr-june", "france-inter-patricia-martin", "pyannote-sample-sheila", "pocketsphinx-goforward",
     "tidigits-dhd", "moonshine-beckett-reader"}
)  # fmt: skip
# JFK's inaugural clip is oratory, not neutral reading: reported apart, never calibrated on.
NOT_NEUTRAL = frozenset({"john-f-kennedy"})


def neutral_set(per_speaker: int = 40) -> list[Utterance]:
    """Read utterances of 1-15 s, at most `per_speaker` per speaker, evenly spread over each one's catalog.

    The three telephony voices have ~170 prompts each; the cap keeps them from outweighing the rest.
    """
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances(min_seconds=1.0, max_seconds=15.0):
        if utt.speaker not in NOT_NEUTRAL:
            by_speaker[utt.speaker].append(utt)
    chosen: list[Utterance] = []
    for items in by_speaker.values():
        items.sort(key=lambda u: u.id)
        step = max(1, len(items) // per_speaker)
        chosen.extend(items[::step][:per_speaker])
    return chosen


def at_gain(audio: np.ndarray, db: float) -> np.ndarray:
    """The recording at another level; louder samples clip as a real input would."""
    return np.clip(audio * 10 ** (db / 20), -1.0, 1.0).astype(np.float32)


def phone_call(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Through a G.711 phone call: 8 kHz, μ-law (μ = 255, 8 bits), decoded back to `rate` as the server does."""
    narrow = np.clip(soxr.resample(audio, rate, 8000), -1.0, 1.0)
    mu = 255.0
    code = np.round(np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu) * 127.0) / 127.0
    decoded = np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu
    return np.asarray(soxr.resample(decoded.astype(np.float32), 8000, rate), dtype=np.float32)
