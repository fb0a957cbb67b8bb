"""The acoustic emotion scores on real, read (neutral) human speech: level, band and calibration checks.

The recordings are the real speech corpus (`tests/support/real_speech.py`, docs/real-speech.md):
telephony prompts (Asterisk, en/fr/it), LibriVox and CMU test sentences, France Inter news, ALSA's
speaker-test voice. Speakers are split into a calibration set (the Reference in
openevi/speech/prosody/acoustic.py is fitted on it with --fit) and a held-out set, reported apart.
JFK's inaugural clip is oratory, not neutral reading, and is reported on its own line.

Run: .venv/bin/python -m benchmarks.prosody_real          # the table (~2 min on 2 cores)
     .venv/bin/python -m benchmarks.prosody_real --fit    # the Reference centres fitted on the calibration speakers
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from openevi.speech.prosody import features
from openevi.speech.prosody.acoustic import SAMPLE_RATE, analyze
from tests.support.neutral_speech import HELD_OUT, NOT_NEUTRAL, at_gain, neutral_set, phone_call
from tests.support.real_speech import Utterance, utterances

HOSTILE = ("anger", "contempt", "disgust", "fear")
# Families of emotions for "no family dominates": neighbours in the circumplex that a listener would
# not tell apart in read speech.
FAMILIES: dict[str, tuple[str, ...]] = {
    "calm/low arousal": ("calmness", "tiredness", "relief", "contentment", "nostalgia", "boredom", "contemplation"),
    "attention": ("interest", "concentration", "realization", "confusion", "doubt", "aesthetic_appreciation"),
    "warmth": ("sympathy", "satisfaction", "admiration", "adoration", "love", "romance", "entrancement"),
    "drive": ("determination", "pride", "triumph", "desire", "craving"),
    "elation": ("joy", "excitement", "amusement", "ecstasy", "surprise_positive", "awe"),
    "hostility": ("anger", "contempt", "disgust", "envy"),
    "fear/distress": ("fear", "horror", "anxiety", "distress", "pain", "empathic_pain", "surprise_negative"),
    "low mood": ("sadness", "disappointment", "guilt", "shame", "embarrassment", "awkwardness"),
}
_FAMILY_OF = {emotion: family for family, members in FAMILIES.items() for emotion in members}


def scores(audio: np.ndarray) -> dict[str, float]:
    return analyze(audio, sample_rate=SAMPLE_RATE).scores


def _top(result: dict[str, float], n: int = 1) -> list[str]:
    return sorted(result, key=result.__getitem__, reverse=True)[:n]


def _max_delta(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) for k in a)


@dataclass
class Report:
    label: str
    utterances: int
    speakers: str
    top_median: float
    top_quartiles: tuple[float, float]
    largest_family: str
    hostile_in_top3: int
    level_kept: dict[float, float]  # gain dB -> share of utterances keeping their top-1
    level_within: dict[float, float]  # gain dB -> share whose 48 scores all move by <= 0.1
    level_p90: dict[float, float]  # gain dB -> 90th percentile of the largest score change
    phone_within: float
    phone_p90: float
    wideband: int  # utterances recorded at >= 16 kHz (the phone comparison's real test)
    wide_within: float


def evaluate(label: str, items: Sequence[Utterance], gains: Sequence[float] = (-12.0, 6.0)) -> Report:
    tops: list[float] = []
    families: Counter[str] = Counter()
    hostile = 0
    kept: dict[float, list[bool]] = {g: [] for g in gains}
    deltas: dict[float, list[float]] = {g: [] for g in gains}
    phone_deltas: list[float] = []
    wide_deltas: list[float] = []
    for utt in items:
        audio = utt.load(SAMPLE_RATE)
        base = scores(audio)
        tops.append(max(base.values()))
        families[_FAMILY_OF[_top(base)[0]]] += 1
        hostile += any(name in _top(base, 3) for name in HOSTILE)
        for g in gains:
            moved = scores(at_gain(audio, g))
            kept[g].append(_top(moved)[0] == _top(base)[0])
            deltas[g].append(_max_delta(base, moved))
        delta = _max_delta(base, scores(phone_call(audio)))
        phone_deltas.append(delta)
        if utt.sample_rate >= 16_000:
            wide_deltas.append(delta)
    speakers = {(u.speaker, u.gender) for u in items}
    genders = Counter(g for _, g in speakers)
    family, count = families.most_common(1)[0]
    q1, _, q3 = statistics.quantiles(tops, n=4) if len(tops) > 1 else (tops[0], 0, tops[0])
    return Report(
        label=label,
        utterances=len(items),
        speakers=f"{len(speakers)} ({genders['female']} F, {genders['male']} M)",
        top_median=statistics.median(tops),
        top_quartiles=(q1, q3),
        largest_family=f"{family} {100 * count / len(items):.0f} %",
        hostile_in_top3=hostile,
        level_kept={g: 100 * float(np.mean(kept[g])) for g in gains},
        level_within={g: 100 * float(np.mean(np.array(deltas[g]) <= 0.1)) for g in gains},
        level_p90={g: float(np.percentile(deltas[g], 90)) for g in gains},
        phone_within=100 * float(np.mean(np.array(phone_deltas) <= 0.1)),
        phone_p90=float(np.percentile(phone_deltas, 90)),
        wideband=len(wide_deltas),
        wide_within=100 * float(np.mean(np.array(wide_deltas) <= 0.1)) if wide_deltas else float("nan"),
    )


def print_table(reports: Sequence[Report]) -> None:
    rows: list[tuple[str, Callable[[Report], str]]] = [
        ("utterances / speakers", lambda r: f"{r.utterances} / {r.speakers}"),
        ("top score: median [quartiles]",
         lambda r: f"{r.top_median:.2f} [{r.top_quartiles[0]:.2f}-{r.top_quartiles[1]:.2f}]"),
        ("largest top-1 family", lambda r: r.largest_family),
        ("anger/contempt/disgust/fear in a top 3", lambda r: str(r.hostile_in_top3)),
        ("-12 dB: top-1 kept / all scores within 0.1 / p90 of largest change",
         lambda r: f"{r.level_kept[-12.0]:.0f} % / {r.level_within[-12.0]:.0f} % / {r.level_p90[-12.0]:.3f}"),
        ("+6 dB: top-1 kept / all scores within 0.1 / p90 of largest change",
         lambda r: f"{r.level_kept[6.0]:.0f} % / {r.level_within[6.0]:.0f} % / {r.level_p90[6.0]:.3f}"),
        ("8 kHz μ-law vs 16 kHz: all scores within 0.1 / p90", lambda r: f"{r.phone_within:.0f} % / {r.phone_p90:.3f}"),
        ("… of which recorded wideband (≥ 16 kHz): within 0.1", lambda r: f"{r.wide_within:.0f} % of {r.wideband}"),
    ]  # fmt: skip
    print("| measure | " + " | ".join(r.label for r in reports) + " |")
    print("|---|" + "---|" * len(reports))
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(r) for r in reports) + " |")


def fit(items: Sequence[Utterance]) -> None:
    """Print each feature's median and spread (IQR / 1.35) over the utterances, on conditioned audio.

    The Reference uses these; the median of the speakers' medians is printed beside them for comparison
    (it weighs the few-utterance speakers, mostly short phrases, as much as the prompt voices).
    """
    from openevi.speech.prosody.conditioning import condition  # imported here: --fit only, and new with it
    by_speaker: dict[str, list[dict[str, float]]] = defaultdict(list)
    for utt in items:
        by_speaker[utt.speaker].append(features.extract(condition(utt.load(SAMPLE_RATE), SAMPLE_RATE), SAMPLE_RATE))
    print(f"{len(items)} utterances, {len(by_speaker)} speakers: {', '.join(sorted(by_speaker))}")
    for name in features.FEATURE_NAMES:
        medians = [float(np.median([f[name] for f in rows])) for rows in by_speaker.values()]
        every = [f[name] for rows in by_speaker.values() for f in rows]
        q1, q3 = np.percentile(every, [25, 75])
        print(
            f"{name:14} utterance median {float(np.median(every)):8.3f}  IQR/1.35 {(q3 - q1) / 1.35:7.3f}"
            f"   median of speaker medians {statistics.median(medians):8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true", help="print the Reference fitted on the calibration speakers")
    args = parser.parse_args()
    chosen = neutral_set()
    calibration = [u for u in chosen if u.speaker not in HELD_OUT]
    held_out = [u for u in chosen if u.speaker in HELD_OUT]
    if args.fit:
        fit(calibration)
        return
    oratory = [u for u in utterances(min_seconds=1.0) if u.speaker in NOT_NEUTRAL]
    reports = [evaluate("calibration speakers", calibration), evaluate("held-out speakers", held_out)]
    if oratory:
        reports.append(evaluate("JFK (oratory, not neutral)", oratory))
    print_table(reports)


if __name__ == "__main__":
    main()
