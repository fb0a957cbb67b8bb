"""A transparent emotion model: eGeMAPS voice features → valence/arousal/dominance → 48 emotion scores.

No trained model is involved. openSMILE's eGeMAPSv02 functionals (pitch, loudness, spectral balance,
voice quality, rate) are normalised against fixed reference statistics, combined with fixed weights
into a point in valence-arousal-dominance (VAD) space, optionally shifted in valence by the words
(NRC emotion lexicon), and compared with each emotion's VAD coordinates from Warriner et al. (2013)
through a Gaussian kernel. Every constant is in this file and explained in docs/prosody.md.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from openevi.speech.prosody.base import EMOTIONS

__all__ = [
    "EMOTION_VAD",
    "FEATURES",
    "REFERENCE",
    "AcousticProsody",
    "Analysis",
    "Reference",
    "analyze",
    "text_valence",
]

SAMPLE_RATE = 16_000

# eGeMAPSv02 functional names we read (a subset of the 88).
FEATURES: dict[str, str] = {
    "f0_mean": "F0semitoneFrom27.5Hz_sma3nz_amean",  # semitones re 27.5 Hz, voiced frames
    "f0_range": "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",  # 20th-80th percentile range, semitones
    "loudness": "loudness_sma3_percentile80.0",  # p80 ignores pauses, unlike the mean
    "alpha_ratio": "alphaRatioV_sma3nz_amean",  # dB, 50-1000 Hz vs 1-5 kHz energy (voiced)
    "hammarberg": "hammarbergIndexV_sma3nz_amean",  # dB, peak 0-2 kHz minus peak 2-5 kHz (voiced)
    "jitter": "jitterLocal_sma3nz_amean",
    "shimmer": "shimmerLocaldB_sma3nz_amean",
    "hnr": "HNRdBACF_sma3nz_amean",
    "voiced_per_s": "VoicedSegmentsPerSec",  # syllable-rate proxy
    "peaks_per_s": "loudnessPeaksPerSec",  # syllable-rate proxy
    "voiced_len": "MeanVoicedSegmentLengthSec",
}


@dataclass(frozen=True)
class Reference:
    """Centre and spread ("one standard unit") of each cue; see docs/prosody.md for where each comes from."""

    f0_mean_st: tuple[float, float] = (29.0, 4.0)  # ~146 Hz: between typical male (~110) and female (~210)
    f0_range_st: tuple[float, float] = (3.5, 1.5)
    loudness_p80: float = 1.46  # espeak-ng default (-a 100, about -21 dBFS RMS); compared in doublings
    loudness_doublings_sd: float = 0.75
    alpha_ratio_db: tuple[float, float] = (-7.6, 4.0)
    hammarberg_db: tuple[float, float] = (14.7, 4.0)
    jitter: tuple[float, float] = (0.02, 0.015)
    shimmer_db: tuple[float, float] = (1.4, 0.4)
    hnr_db: tuple[float, float] = (6.0, 3.0)
    voiced_per_s: tuple[float, float] = (3.2, 0.8)
    peaks_per_s: tuple[float, float] = (4.9, 1.0)
    pause_ratio: tuple[float, float] = (0.15, 0.10)


REFERENCE = Reference()

# Cue → dimension weights (cues are z-scores; signs follow Juslin & Laukka 2003, Scherer 2003,
# Banse & Scherer 1996; Ohala's frequency code for low pitch → dominance). Arousal has by far the
# strongest acoustic evidence; acoustic valence is weak, which the kernel weights below reflect.
WEIGHTS: dict[str, dict[str, float]] = {
    "valence": {"f0_range": 0.30, "rate": 0.15, "hnr": 0.20, "jitter": -0.15, "shimmer": -0.10, "pause": -0.10},
    "arousal": {"loudness": 0.30, "f0_mean": 0.10, "f0_range": 0.15, "rate": 0.20, "brightness": 0.15, "pause": -0.10},
    "dominance": {
        "loudness": 0.35, "f0_mean": -0.20, "brightness": 0.15, "pause": -0.15, "jitter": -0.075, "shimmer": -0.075,
    },
}  # fmt: skip
CUE_GAIN = 2.0  # a weighted mean of partly independent z-scores varies less than one z-score
VAD_LIMIT = 3.0  # soft bound (tanh) of each estimated coordinate, in standard units
TEXT_GAIN = 2.0  # standard units of valence for text that is wholly positive (t = 1)
KERNEL_WIDTH = 0.6  # sigma of the Gaussian kernel, in standard units: neighbours ~1 unit apart score ~0.25
# Emotions far from the centre (calm at arousal -2.9) are out of reach of a narrow kernel, so each
# kernel widens with its emotion's distance from the centre beyond this radius: sigma·max(1, |c|/R).
KERNEL_RADIUS = 1.5
# Per-dimension kernel weights: how much a mismatch on that axis lowers a score.
KERNEL_WEIGHTS_ACOUSTIC = (0.35, 1.0, 0.5)  # valence from the voice alone is unreliable
KERNEL_WEIGHTS_WITH_TEXT = (1.0, 1.0, 0.5)
FLOOR = 0.01  # score of every emotion when there is no usable speech
MIN_SECONDS = 0.25  # shorter clips are not analysed (pitch needs several periods and frames)
SILENCE_DBFS = -55.0  # loudest 20 ms frame below this: silence
FULL_CONFIDENCE_VOICED_S = 0.6  # voiced speech needed for full-strength scores

# Warriner, Kuperman & Brysbaert (2013), mean ratings on 1-9 scales (valence, arousal, dominance),
# of the emotion's own name or, where that lemma was not rated, the closest rated lemma (2nd field).
WARRINER: dict[str, tuple[str, float, float, float]] = {
    "admiration": ("admiration", 7.58, 5.52, 6.11),
    "adoration": ("adoration", 6.47, 4.36, 6.54),
    "aesthetic_appreciation": ("appreciation", 7.30, 4.68, 6.63),
    "amusement": ("amusement", 7.00, 4.82, 6.59),
    "anger": ("anger", 2.50, 5.93, 5.14),
    "anxiety": ("anxiety", 2.38, 4.78, 3.39),
    "awe": ("awe", 6.85, 3.83, 5.85),
    "awkwardness": ("awkwardness", 3.86, 4.65, 4.13),
    "boredom": ("boredom", 2.77, 2.58, 5.04),
    "calmness": ("calm", 6.89, 1.67, 7.44),
    "concentration": ("concentration", 5.45, 4.00, 6.63),
    "confusion": ("confusion", 3.32, 4.64, 3.08),
    "contemplation": ("contemplate", 5.48, 3.16, 5.68),
    "contempt": ("contempt", 3.22, 4.61, 4.45),
    "contentment": ("contentment", 6.62, 4.60, 6.58),
    "craving": ("crave", 5.41, 5.04, 5.00),
    "desire": ("desire", 7.05, 6.20, 6.07),
    "determination": ("determination", 7.58, 5.52, 7.06),
    "disappointment": ("disappointment", 2.79, 4.90, 4.08),
    "disgust": ("disgust", 3.32, 5.00, 4.84),
    "distress": ("distress", 3.25, 4.00, 3.90),
    "doubt": ("doubt", 3.28, 4.33, 3.06),
    "ecstasy": ("ecstasy", 7.19, 6.11, 5.52),
    "embarrassment": ("embarrassment", 2.72, 5.45, 2.92),
    "empathic_pain": ("pity", 3.18, 4.07, 4.52),
    "entrancement": ("fascination", 7.25, 5.08, 6.00),
    "envy": ("envy", 3.05, 4.35, 3.16),
    "excitement": ("excitement", 7.62, 6.21, 6.33),
    "fear": ("fear", 2.93, 6.14, 3.32),
    "guilt": ("guilt", 2.29, 4.48, 4.35),
    "horror": ("horror", 3.38, 6.13, 3.49),
    "interest": ("interest", 6.66, 4.36, 6.31),
    "joy": ("joy", 8.21, 5.55, 7.00),
    "love": ("love", 8.00, 5.36, 5.92),
    "nostalgia": ("nostalgia", 6.65, 4.38, 5.36),
    "pain": ("pain", 2.00, 6.27, 3.47),
    "pride": ("pride", 6.50, 5.54, 5.83),
    "realization": ("realization", 6.42, 3.67, 5.68),
    "relief": ("relief", 6.63, 4.42, 5.64),
    "romance": ("romance", 7.28, 6.06, 5.00),
    "sadness": ("sadness", 2.40, 2.81, 3.84),
    "satisfaction": ("satisfaction", 7.18, 3.18, 6.44),
    "shame": ("shame", 2.62, 5.40, 5.21),
    "surprise_negative": ("shock", 3.90, 5.95, 5.79),
    "surprise_positive": ("surprise", 7.44, 6.57, 5.17),
    "sympathy": ("sympathy", 6.57, 3.08, 5.90),
    "tiredness": ("tired", 4.29, 3.67, 5.06),
    "triumph": ("triumph", 7.34, 5.60, 7.50),
}


def _standardise(table: Mapping[str, tuple[str, float, float, float]]) -> dict[str, tuple[float, float, float]]:
    # Each axis is centred and scaled over the 48 emotions, so "one standard unit" means the same
    # spread of emotion words on every axis and the acoustic estimate lives on the same scale.
    raw = np.array([row[1:] for row in table.values()], dtype=np.float64)
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    return {name: (float(v), float(a), float(d)) for name, (v, a, d) in zip(table, z, strict=True)}


EMOTION_VAD: dict[str, tuple[float, float, float]] = _standardise(WARRINER)
_CENTRES = np.array([EMOTION_VAD[name] for name in EMOTIONS], dtype=np.float64)
_WIDTHS = KERNEL_WIDTH * np.maximum(1.0, np.linalg.norm(_CENTRES, axis=1) / KERNEL_RADIUS)


@dataclass
class Analysis:
    """Everything one scoring computed, for debugging and for the docs' worked examples."""

    scores: dict[str, float]
    vad: tuple[float, float, float] = (0.0, 0.0, 0.0)  # standard units, each within ±VAD_LIMIT
    confidence: float = 0.0  # 0 = no usable speech (flat FLOOR scores), 1 = enough voiced speech
    cues: dict[str, float] = field(default_factory=dict)  # z-scores after clipping
    features: dict[str, float] = field(default_factory=dict)  # raw eGeMAPS values + pause_ratio
    text_valence: float | None = None  # in [-1, 1]; None when no lexicon word matched


def flat_scores(value: float = FLOOR) -> dict[str, float]:
    return dict.fromkeys(EMOTIONS, value)


def _frame_db(audio: np.ndarray, frame: int) -> np.ndarray:
    n = len(audio) // frame
    if n == 0:
        return np.full(1, -120.0)
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-6)))


def pause_ratio(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Share of the speech span (first to last active 20 ms frame) taken by pauses of at least 160 ms."""
    db = _frame_db(audio, sample_rate // 50)
    threshold = max(float(np.percentile(db, 95)) - 30.0, SILENCE_DBFS)
    active = np.flatnonzero(db > threshold)
    if len(active) < 2:
        return 0.0
    span = db[active[0] : active[-1] + 1] <= threshold
    # Only runs of >= 8 quiet frames count: stop closures and short dips are not pauses.
    paused = 0
    run = 0
    for quiet in span:
        if quiet:
            run += 1
        else:
            paused += run if run >= 8 else 0
            run = 0
    return paused / len(span)


def _z(value: float, ref: tuple[float, float]) -> float:
    return (value - ref[0]) / ref[1]


def cues(features: Mapping[str, float], ref: Reference = REFERENCE) -> dict[str, float]:
    """Normalised cues (z-scores, clipped to ±3) from raw features; missing or non-finite values count as 0."""
    f = {k: (v if math.isfinite(v) else math.nan) for k, v in features.items()}
    loud = f.get("loudness", math.nan)
    z = {
        "f0_mean": _z(f.get("f0_mean", math.nan), ref.f0_mean_st),
        "f0_range": _z(f.get("f0_range", math.nan), ref.f0_range_st),
        "loudness": math.log2(loud / ref.loudness_p80) / ref.loudness_doublings_sd if loud > 0 else -3.0,
        # More high-frequency energy ("brighter", tenser voice): alpha ratio up, Hammarberg index down.
        "brightness": 0.5 * (_z(f.get("alpha_ratio", math.nan), ref.alpha_ratio_db)
                             - _z(f.get("hammarberg", math.nan), ref.hammarberg_db)),
        "jitter": _z(f.get("jitter", math.nan), ref.jitter),
        "shimmer": _z(f.get("shimmer", math.nan), ref.shimmer_db),
        "hnr": _z(f.get("hnr", math.nan), ref.hnr_db),
        "rate": 0.5 * (_z(f.get("voiced_per_s", math.nan), ref.voiced_per_s)
                       + _z(f.get("peaks_per_s", math.nan), ref.peaks_per_s)),
        "pause": _z(f.get("pause_ratio", math.nan), ref.pause_ratio),
    }  # fmt: skip
    return {k: float(np.clip(v, -3.0, 3.0)) if math.isfinite(v) else 0.0 for k, v in z.items()}


def _bounded(x: float) -> float:
    return VAD_LIMIT * math.tanh(x / VAD_LIMIT)


def vad_from_cues(z: Mapping[str, float], text: float | None = None) -> tuple[float, float, float]:
    """Valence, arousal, dominance in standard units; `text` (in [-1, 1]) shifts valence."""
    raw = {dim: CUE_GAIN * sum(w * z.get(cue, 0.0) for cue, w in weights.items()) for dim, weights in WEIGHTS.items()}
    valence = raw["valence"] + (TEXT_GAIN * text if text is not None else 0.0)
    return _bounded(valence), _bounded(raw["arousal"]), _bounded(raw["dominance"])


def project(vad: tuple[float, float, float], *, with_text: bool = False, confidence: float = 1.0) -> dict[str, float]:
    """Scores of the 48 emotions for a VAD point: a weighted Gaussian kernel around each emotion's coordinates."""
    weights = np.array(KERNEL_WEIGHTS_WITH_TEXT if with_text else KERNEL_WEIGHTS_ACOUSTIC)
    d2 = ((_CENTRES - np.array(vad)) ** 2 * weights).sum(axis=1)
    kernel = np.exp(-0.5 * d2 / _WIDTHS**2)
    confidence = min(max(confidence, 0.0), 1.0)
    scores = FLOOR + (1.0 - FLOOR) * confidence * kernel
    return {name: round(float(s), 4) for name, s in zip(EMOTIONS, scores, strict=True)}


# --- words -----------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NEGATORS = frozenset({"not", "no", "never", "nothing", "nobody", "neither", "nor", "without", "hardly"})
_NEGATION_SPAN = 3  # words after a negator whose polarity is flipped


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, frozenset[str]]:
    from nrclex.core import NRCLex

    # The bundled NRC lexicon via NRCLex; we tokenise ourselves, since NRCLex's raw-text path needs
    # TextBlob/NLTK corpora that are downloaded at run time.
    return {word: frozenset(tags) for word, tags in NRCLex(None).__lexicon__.items()}


def _lookup(word: str, lexicon: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    if word in lexicon:
        return lexicon[word]
    # A crude stemmer for inflections the lexicon lists only as lemmas (loved → love, hates → hate).
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""),
                         ("ing", "e"), ("ly", "")):  # fmt: skip
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)] + repl
            if stem in lexicon:
                return lexicon[stem]
    return None


def text_valence(text: str) -> float | None:
    """(positive - negative) / (positive + negative + 1) over NRC lexicon words, with simple negation; None if none."""
    lexicon = _lexicon()
    positive = negative = 0
    flip_left = 0
    for token in _WORD.findall(text.lower()):
        if token in _NEGATORS or token.endswith("n't"):
            flip_left = _NEGATION_SPAN
            continue
        tags = _lookup(token, lexicon)
        flipped = flip_left > 0
        flip_left = max(flip_left - 1, 0)
        if not tags:
            continue
        pos, neg = "positive" in tags, "negative" in tags
        if flipped:
            pos, neg = neg, pos
        positive += pos
        negative += neg
    if positive + negative == 0:
        return None
    return (positive - negative) / (positive + negative + 1)


# --- audio -----------------------------------------------------------------------------------

_smile_lock = threading.Lock()


@lru_cache(maxsize=1)
def _smile() -> Any:
    import opensmile  # type: ignore[import-untyped]

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def _extract(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    with _smile_lock:  # building the Smile object once; extraction itself is re-entrant
        smile = _smile()
    # openSMILE converts to int16 without clipping (values >= 1.0 would wrap around).
    clipped = np.clip(audio, -1.0, 32767 / 32768).astype(np.float32)
    row = smile.process_signal(clipped, sample_rate).iloc[0]
    return {name: float(row[column]) for name, column in FEATURES.items()}


def analyze(
    audio: np.ndarray, *, text: str | None = None, sample_rate: int = SAMPLE_RATE, reference: Reference = REFERENCE
) -> Analysis:
    """Score one utterance synchronously (CPU-bound: call it from a worker thread)."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    words = text_valence(text) if text else None
    if len(audio) < MIN_SECONDS * sample_rate or float(_frame_db(audio, sample_rate // 50).max()) < SILENCE_DBFS:
        return Analysis(scores=flat_scores(), text_valence=words)
    features = _extract(audio, sample_rate)
    features["pause_ratio"] = pause_ratio(audio, sample_rate)
    voiced_s = features["voiced_per_s"] * features["voiced_len"] * len(audio) / sample_rate
    confidence = min(max(voiced_s / FULL_CONFIDENCE_VOICED_S, 0.0), 1.0) if math.isfinite(voiced_s) else 0.0
    z = cues(features, reference)
    vad = vad_from_cues(z, words)
    scores = project(vad, with_text=words is not None, confidence=confidence)
    return Analysis(scores, vad, confidence, z, features, words)


class AcousticProsody:
    """ProsodyModel from voice features (openSMILE eGeMAPSv02) and, optionally, the transcript's words."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self, *, max_workers: int = 1, use_text: bool = True, reference: Reference = REFERENCE) -> None:
        """`max_workers` bounds concurrent extractions; `use_text` blends in the NRC lexicon valence."""
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="openevi-prosody")
        self._use_text = use_text
        self._reference = reference

    async def load(self) -> None:
        """Build openSMILE and read the lexicon now rather than on the first utterance."""

        def warm() -> None:
            _extract(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), SAMPLE_RATE)
            if self._use_text:
                _lexicon()

        await asyncio.get_running_loop().run_in_executor(self._pool, warm)

    async def analyze(self, audio: np.ndarray, *, text: str | None = None) -> Analysis:
        """Like `score`, with the intermediate features, cues and VAD point."""
        words = text if self._use_text else None
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: analyze(audio, text=words, sample_rate=self.sample_rate, reference=self._reference)
        )

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        """All 48 emotions, each in [0, 1]; flat FLOOR scores for silence or clips under 0.25 s."""
        return (await self.analyze(audio, text=text)).scores

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
