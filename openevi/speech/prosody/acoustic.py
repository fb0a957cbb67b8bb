"""A transparent emotion model: voice features → valence/arousal/dominance → 48 emotion scores.

No trained model is involved. Voice features (pitch, loudness, spectral balance, voice quality, tempo;
computed in numpy by `features.py`) are normalised against fixed reference statistics of ordinary,
calm speech, combined with fixed weights into an offset from that neutral speech in
valence-arousal-dominance (VAD) space, optionally shifted in valence by the words (VADER's sentiment
lexicon, MIT), placed in emotion space relative to where neutral speech sits (NEUTRAL_PLACEMENT), and
compared with each emotion's VAD placement (our own table, PLACEMENTS) through a Gaussian kernel whose
height grows with the distance from neutral (a calm voice scores low everywhere). Every constant is in
this file and explained in docs/prosody.md.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from openevi.speech.prosody import features as voice
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.prosody.conditioning import condition

__all__ = [
    "EMOTION_VAD",
    "NEUTRAL_VAD",
    "PLACEMENTS",
    "REFERENCE",
    "AcousticProsody",
    "Analysis",
    "Extractor",
    "Reference",
    "analyze",
    "intensity",
    "pitch_level",
    "project",
    "score_offset",
    "text_valence",
]

SAMPLE_RATE = 16_000

# A feature extractor: audio (float, mono) and its sample rate → the names in features.FEATURE_NAMES.
Extractor = Callable[[np.ndarray, int], dict[str, float]]


@dataclass(frozen=True)
class Reference:
    """Centre and spread ("one standard unit") of each cue for `features.extract` on conditioned audio.

    Fitted on real read speech of 8 speakers (benchmarks/prosody_real.py --fit; docs/prosody.md).
    """

    # Pitch level is judged against the nearer of two typical speaking registers (~107 Hz and ~208 Hz),
    # so that an ordinary low or high voice is not read as subdued or excited; see `pitch_level`.
    f0_registers_st: tuple[float, float] = (23.5, 35.0)
    f0_register_sd: float = 2.5
    f0_range_st: tuple[float, float] = (6.0, 1.9)
    loudness_p80: float = 0.54  # at conditioning.ACTIVE_LEVEL_DBFS: what is left is the level's dynamics
    loudness_doublings_sd: float = 0.75
    alpha_ratio_db: tuple[float, float] = (-16.9, 3.7)
    hammarberg_db: tuple[float, float] = (25.7, 4.9)
    jitter: tuple[float, float] = (0.030, 0.008)
    shimmer_db: tuple[float, float] = (1.15, 0.25)
    hnr_db: tuple[float, float] = (11.4, 3.1)
    voiced_per_s: tuple[float, float] = (2.97, 1.15)
    peaks_per_s: tuple[float, float] = (5.1, 1.35)
    pause_ratio: tuple[float, float] = (0.05, 0.10)  # one-sided: only pausing more than this counts


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
# A weighted mean of partly independent z-scores varies less than one z-score, hence a gain above 1;
# it is largest for arousal, whose acoustic evidence is strongest and most consistent, and smallest for
# valence, whose acoustic evidence is weakest (the words carry valence better; see text_shift): on real
# voices its cues (voice quality, which codecs also move) alone pushed firm read speech to contempt.
CUE_GAIN: dict[str, float] = {"valence": 0.5, "arousal": 3.0, "dominance": 1.5}
VAD_LIMIT = 3.0  # soft bound (tanh) of each estimated coordinate, in standard units
TEXT_GAIN = 2.0  # standard units of valence for text that is wholly positive (t = 1)
# VADER gives everyday requests a mild positive score ("please", "like": t ≈ 0.3); only the part of |t|
# beyond this counts, so polite neutral sentences stay neutral while clearly emotional words still move.
TEXT_DEADZONE = 0.25
KERNEL_WIDTH = 0.6  # sigma of the Gaussian kernel, in standard units: neighbours ~1 unit apart score ~0.25
# Emotions far from the centre (calm at arousal -2.9) are out of reach of a narrow kernel, so each
# kernel widens with its emotion's distance from the centre beyond this radius: sigma·max(1, |c|/R).
KERNEL_RADIUS = 1.5
# Per-dimension kernel weights: how much a mismatch on that axis lowers a score.
# From the voice alone, valence is a damped estimate (CUE_GAIN) that still has to count: at 0.35 a firm,
# level voice sat next to contempt; negative emotions need more than a small valence offset.
KERNEL_WEIGHTS_ACOUSTIC = (0.8, 1.0, 0.5)
KERNEL_WEIGHTS_WITH_TEXT = (1.0, 1.0, 0.5)
FLOOR = 0.01  # score of every emotion when there is no usable speech
# Where ordinary, calm read speech (the Reference) sits among the emotions, on the PLACEMENTS scale:
# mildly pleasant, neither activated nor deactivated (0.0, a little below the 48 emotions' mean of
# +0.225), mildly in control: among concentration, interest, contemplation, satisfaction, sympathy and
# aesthetic appreciation, with calmness one step quieter. The voice's VAD estimate is an offset from here.
NEUTRAL_PLACEMENT = (0.3, 0.0, 0.3)
# Height of the kernel: NEUTRAL_CEILING for neutral speech, rising towards 1 with the (kernel-weighted)
# distance d from neutral as 1 - (1 - NEUTRAL_CEILING)·exp(-d²/2R²). Hume's scores for ordinary speech
# are mostly 0.0-0.4 with the top few 0.2-0.6; strongly expressive speech reaches 0.7-0.9.
NEUTRAL_CEILING = 0.4
INTENSITY_RADIUS = 2.0  # ordinary read speech varies ~1 unit in arousal: that alone must not look emotional
MIN_SECONDS = 0.25  # shorter clips are not analysed (pitch needs several periods and frames)
SILENCE_DBFS = -55.0  # loudest 20 ms frame below this: silence
FULL_CONFIDENCE_VOICED_S = 0.6  # voiced speech needed for full-strength scores

# Valence, arousal, dominance placements of the 48 emotions on -1..+1 scales, set by the openevi
# authors (our own judgement, Apache-2.0 like the rest of the code), informed by the circumplex and PAD
# literature: Russell (1980), Russell & Mehrabian (1977), Scherer (2005, the Geneva emotion wheel),
# Fontaine et al. (2007). No rated dataset was copied; docs/prosody.md gives the reasoning per emotion.
PLACEMENTS: dict[str, tuple[float, float, float]] = {
    "admiration": (0.6, 0.3, 0.0),
    "adoration": (0.8, 0.3, 0.0),
    "aesthetic_appreciation": (0.6, -0.1, 0.2),
    "amusement": (0.7, 0.5, 0.3),
    "anger": (-0.7, 0.8, 0.6),
    "anxiety": (-0.6, 0.6, -0.6),
    "awe": (0.5, 0.5, -0.5),
    "awkwardness": (-0.4, 0.2, -0.5),
    "boredom": (-0.5, -0.7, -0.1),
    "calmness": (0.5, -0.8, 0.3),
    "concentration": (0.1, 0.2, 0.4),
    "confusion": (-0.3, 0.2, -0.5),
    "contemplation": (0.1, -0.4, 0.1),
    "contempt": (-0.6, 0.1, 0.7),
    "contentment": (0.7, -0.5, 0.4),
    "craving": (0.1, 0.5, -0.3),
    "desire": (0.5, 0.6, 0.1),
    "determination": (0.3, 0.5, 0.8),
    "disappointment": (-0.6, -0.3, -0.4),
    "disgust": (-0.7, 0.4, 0.3),
    "distress": (-0.7, 0.6, -0.6),
    "doubt": (-0.3, -0.1, -0.4),
    "ecstasy": (0.9, 0.9, 0.3),
    "embarrassment": (-0.5, 0.5, -0.7),
    "empathic_pain": (-0.5, 0.2, -0.3),
    "entrancement": (0.6, 0.1, -0.3),
    "envy": (-0.6, 0.3, -0.3),
    "excitement": (0.7, 0.9, 0.4),
    "fear": (-0.8, 0.8, -0.8),
    "guilt": (-0.6, 0.1, -0.5),
    "horror": (-0.9, 0.9, -0.7),
    "interest": (0.5, 0.3, 0.2),
    "joy": (0.9, 0.6, 0.5),
    "love": (0.9, 0.3, 0.2),
    "nostalgia": (0.2, -0.4, -0.2),
    "pain": (-0.9, 0.6, -0.6),
    "pride": (0.7, 0.4, 0.8),
    "realization": (0.2, 0.3, 0.3),
    "relief": (0.6, -0.5, 0.2),
    "romance": (0.7, 0.3, 0.1),
    "sadness": (-0.8, -0.5, -0.6),
    "satisfaction": (0.7, -0.2, 0.6),
    "shame": (-0.7, 0.2, -0.8),
    "surprise_negative": (-0.5, 0.8, -0.3),
    "surprise_positive": (0.6, 0.8, 0.1),
    "sympathy": (0.3, -0.2, 0.0),
    "tiredness": (-0.3, -0.9, -0.4),
    "triumph": (0.8, 0.8, 0.9),
}


def _standardise(table: Mapping[str, tuple[float, float, float]]) -> dict[str, tuple[float, float, float]]:
    # Each axis is centred and scaled over the 48 emotions, so "one standard unit" means the same
    # spread of emotions on every axis and the acoustic estimate lives on the same scale.
    raw = np.array(list(table.values()), dtype=np.float64)
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    return {name: (float(v), float(a), float(d)) for name, (v, a, d) in zip(table, z, strict=True)}


EMOTION_VAD: dict[str, tuple[float, float, float]] = _standardise(PLACEMENTS)
_CENTRES = np.array([EMOTION_VAD[name] for name in EMOTIONS], dtype=np.float64)
_RAW = np.array(list(PLACEMENTS.values()), dtype=np.float64)
# NEUTRAL_PLACEMENT on the same standardised axes as EMOTION_VAD.
NEUTRAL_VAD: tuple[float, float, float] = tuple(  # type: ignore[assignment]
    float(v) for v in (np.array(NEUTRAL_PLACEMENT) - _RAW.mean(axis=0)) / _RAW.std(axis=0)
)
_WIDTHS = KERNEL_WIDTH * np.maximum(1.0, np.linalg.norm(_CENTRES, axis=1) / KERNEL_RADIUS)


@dataclass
class Analysis:
    """Everything one scoring computed, for debugging and for the docs' worked examples."""

    scores: dict[str, float]
    vad: tuple[float, float, float] = (0.0, 0.0, 0.0)  # offset from neutral speech, standard units, ±VAD_LIMIT
    confidence: float = 0.0  # 0 = no usable speech (flat FLOOR scores), 1 = enough voiced speech
    cues: dict[str, float] = field(default_factory=dict)  # z-scores after clipping
    features: dict[str, float] = field(default_factory=dict)  # raw extractor output (features.FEATURE_NAMES)
    text_valence: float | None = None  # in [-1, 1]; None when no lexicon word matched


def flat_scores(value: float = FLOOR) -> dict[str, float]:
    return dict.fromkeys(EMOTIONS, value)


def _loudest_frame_db(audio: np.ndarray, frame: int) -> float:
    n = len(audio) // frame
    if n == 0:
        return -120.0
    frames = audio[: n * frame].astype(np.float64).reshape(n, frame)
    return float(20.0 * np.log10(max(float(np.sqrt(np.mean(frames * frames, axis=1)).max()), 1e-6)))


def _z(value: float, ref: tuple[float, float]) -> float:
    return (value - ref[0]) / ref[1]


def pitch_level(f0_st: float, ref: Reference = REFERENCE) -> float:
    """z-score of mean pitch against the nearer speaking register, blended smoothly between the two.

    One utterance cannot tell a high man's voice from a low woman's, so between the registers the
    z-scores against both are mixed (logistic weight, 1 st wide) and pitch level carries little evidence there.
    """
    if not math.isfinite(f0_st):
        return math.nan
    low, high = ref.f0_registers_st
    weight_high = 1.0 / (1.0 + math.exp(-(f0_st - 0.5 * (low + high))))
    return ((1.0 - weight_high) * (f0_st - low) + weight_high * (f0_st - high)) / ref.f0_register_sd


def cues(features: Mapping[str, float], ref: Reference = REFERENCE) -> dict[str, float]:
    """Normalised cues (z-scores, clipped to ±3) from raw features; missing or non-finite values count as 0."""
    f = {k: (v if math.isfinite(v) else math.nan) for k, v in features.items()}
    if f.get("voiced_s", math.nan) == 0.0:
        # No voiced frames: pitch and voice quality are undefined, so they stay at the reference.
        f = {k: v for k, v in f.items() if k not in voice.VOICED_FEATURES}
    loud = f.get("loudness", math.nan)
    z = {
        "f0_mean": pitch_level(f.get("f0_mean", math.nan), ref),
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
        # A short turn often has no pause at all: fewer pauses than usual is no evidence, more is.
        "pause": max(0.0, _z(f.get("pause_ratio", math.nan), ref.pause_ratio)),
    }  # fmt: skip
    return {k: float(np.clip(v, -3.0, 3.0)) if math.isfinite(v) else 0.0 for k, v in z.items()}


def _bounded(x: float) -> float:
    return VAD_LIMIT * math.tanh(x / VAD_LIMIT)


def text_shift(text: float | None) -> float:
    """Valence offset (standard units) from VADER's compound score `text`, after the dead zone."""
    if text is None:
        return 0.0
    beyond = max(0.0, abs(text) - TEXT_DEADZONE) / (1.0 - TEXT_DEADZONE)
    return math.copysign(TEXT_GAIN * beyond, text)


def vad_from_cues(z: Mapping[str, float], text: float | None = None) -> tuple[float, float, float]:
    """Offset from neutral speech in valence, arousal, dominance (standard units); `text` in [-1, 1] shifts valence.

    The fusion: arousal and dominance come from the voice only; valence is the voice's weak estimate plus
    the words' (VADER) shift, which dominates it whenever the words carry sentiment.
    """
    raw = {
        dim: CUE_GAIN[dim] * sum(w * z.get(cue, 0.0) for cue, w in weights.items()) for dim, weights in WEIGHTS.items()
    }
    valence = raw["valence"] + text_shift(text)
    return _bounded(valence), _bounded(raw["arousal"]), _bounded(raw["dominance"])


def _axis_weights(with_text: bool) -> np.ndarray:
    return np.array(KERNEL_WEIGHTS_WITH_TEXT if with_text else KERNEL_WEIGHTS_ACOUSTIC)


def intensity(offset: tuple[float, float, float], *, with_text: bool = False) -> float:
    """Kernel height for an offset from neutral speech: NEUTRAL_CEILING at 0, towards 1 far away."""
    d2 = float((np.array(offset) ** 2 * _axis_weights(with_text)).sum())
    return 1.0 - (1.0 - NEUTRAL_CEILING) * math.exp(-0.5 * d2 / INTENSITY_RADIUS**2)


def project(
    vad: tuple[float, float, float], *, with_text: bool = False, confidence: float = 1.0, height: float = 1.0
) -> dict[str, float]:
    """Scores of the 48 emotions at a point of emotion space (EMOTION_VAD's axes): a weighted Gaussian
    kernel around each emotion's coordinates, scaled by `height` (1 = an emotion's own point scores 1)."""
    d2 = ((_CENTRES - np.array(vad)) ** 2 * _axis_weights(with_text)).sum(axis=1)
    kernel = np.exp(-0.5 * d2 / _WIDTHS**2)
    confidence = min(max(confidence, 0.0), 1.0)
    scores = FLOOR + (1.0 - FLOOR) * confidence * min(max(height, 0.0), 1.0) * kernel
    return {name: round(float(s), 4) for name, s in zip(EMOTIONS, scores, strict=True)}


def score_offset(
    offset: tuple[float, float, float], *, with_text: bool = False, confidence: float = 1.0
) -> dict[str, float]:
    """Scores for speech `offset` (standard units) away from neutral speech: the calibrated projection."""
    point = (NEUTRAL_VAD[0] + offset[0], NEUTRAL_VAD[1] + offset[1], NEUTRAL_VAD[2] + offset[2])
    return project(point, with_text=with_text, confidence=confidence, height=intensity(offset, with_text=with_text))


# --- words -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _sentiment() -> Any:
    # VADER (Hutto & Gilbert 2014, MIT): a 7,500-entry valence lexicon rated -4..+4 plus rules for
    # negation ("not happy"), intensifiers, "but" and punctuation. Reads files from its own package only.
    return SentimentIntensityAnalyzer()


def text_valence(text: str) -> float | None:
    """VADER's compound valence of the text, in [-1, 1]; None when no lexicon word matched."""
    if not text.strip():
        return None
    polarity = _sentiment().polarity_scores(text)
    if polarity["pos"] == 0.0 and polarity["neg"] == 0.0:
        return None
    return float(polarity["compound"])


# --- audio -----------------------------------------------------------------------------------


def analyze(
    audio: np.ndarray,
    *,
    text: str | None = None,
    sample_rate: int = SAMPLE_RATE,
    reference: Reference = REFERENCE,
    extractor: Extractor = voice.extract,
) -> Analysis:
    """Score one utterance synchronously (CPU-bound: call it from a worker thread)."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    audio = np.clip(audio, -1.0, 1.0)
    words = text_valence(text) if text else None
    if len(audio) < MIN_SECONDS * sample_rate or _loudest_frame_db(audio, sample_rate // 50) < SILENCE_DBFS:
        return Analysis(scores=flat_scores(), text_valence=words)
    features = extractor(condition(audio, sample_rate), sample_rate)
    voiced_s = features.get("voiced_s", 0.0)
    confidence = min(max(voiced_s / FULL_CONFIDENCE_VOICED_S, 0.0), 1.0) if math.isfinite(voiced_s) else 0.0
    z = cues(features, reference)
    vad = vad_from_cues(z, words)
    scores = score_offset(vad, with_text=words is not None, confidence=confidence)
    return Analysis(scores, vad, confidence, z, features, words)


class AcousticProsody:
    """ProsodyModel from voice features (`features.extract`, numpy) and, optionally, the transcript's words."""

    sample_rate: int = SAMPLE_RATE
    default_reference: ClassVar[Reference] = REFERENCE

    def __init__(self, *, max_workers: int = 1, use_text: bool = True, reference: Reference | None = None) -> None:
        """`max_workers` bounds concurrent extractions; `use_text` blends in the transcript's VADER valence."""
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="openevi-prosody")
        self._use_text = use_text
        self._reference = reference or self.default_reference

    def _extract(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        return voice.extract(audio, sample_rate)

    async def load(self) -> None:
        """Warm the extractor and read the lexicon now rather than on the first utterance."""

        def warm() -> None:
            self._extract(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), SAMPLE_RATE)
            if self._use_text:
                _sentiment()

        await asyncio.get_running_loop().run_in_executor(self._pool, warm)

    async def analyze(self, audio: np.ndarray, *, text: str | None = None) -> Analysis:
        """Like `score`, with the intermediate features, cues and VAD point."""
        words = text if self._use_text else None
        return await asyncio.get_running_loop().run_in_executor(
            self._pool,
            lambda: analyze(
                audio, text=words, sample_rate=self.sample_rate, reference=self._reference, extractor=self._extract
            ),
        )

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        """All 48 emotions, each in [0, 1]; flat FLOOR scores for silence or clips under 0.25 s."""
        return (await self.analyze(audio, text=text)).scores

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
