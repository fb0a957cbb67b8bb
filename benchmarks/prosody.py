"""Prosody latency (set-up, then time per utterance of 1, 3 and 6 s of espeak-ng speech), and the
calibration table of docs/prosody.md (top-3 emotions on a fixed set of synthetic utterances).

Run: .venv/bin/python -m benchmarks.prosody [--runs N] [--provider acoustic|opensmile]   (needs espeak-ng)
     .venv/bin/python -m benchmarks.prosody --calibration
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import time
import wave

import numpy as np
import soxr

RATE = 16_000
TEXT = (
    "I found three flights to Chicago tomorrow morning, and the earliest one leaves at seven fifteen. "
    "Your order shipped on Monday from our warehouse in Denver, and the carrier expects it on Thursday."
)


def _speech(seconds: float) -> np.ndarray:
    wav = subprocess.run(["espeak-ng", "--stdout", TEXT], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        rate = w.getframerate()
    audio = np.asarray(soxr.resample(pcm, rate, RATE), dtype=np.float32)
    return np.resize(audio, int(seconds * RATE))  # repeats or cuts to the exact length


# The fixed calibration set: (label, espeak-ng options, sentence). Options: -a amplitude (default 100),
# -p pitch 0-99 (default 50), -s words/min (default 175), -v voice. The sentence is also the transcript.
NEUTRAL_SENTENCES = (
    "I would like to book a table for two people tonight.",
    "The meeting has been moved to three o'clock on Friday.",
    "She bought apples, oranges and bananas at the market.",
)
QUESTIONS = ("What is the weather going to be like this weekend?", "Can you tell me how to get to the train station?")
LOUD_FAST = ("-a", "190", "-p", "75", "-s", "240")
QUIET_SLOW = ("-a", "35", "-p", "25", "-s", "110")
CALIBRATION_SET: tuple[tuple[str, tuple[str, ...], str], ...] = (
    *((f"neutral, male: {t}", ("-v", "en-us"), t) for t in NEUTRAL_SENTENCES),
    *((f"neutral, female: {t}", ("-v", "en-us+f3"), t) for t in NEUTRAL_SENTENCES),
    *((f"question, male: {t}", ("-v", "en-us"), t) for t in QUESTIONS),
    *((f"question, female: {t}", ("-v", "en-us+f3"), t) for t in QUESTIONS),
    (f"loud/fast/high, male: {NEUTRAL_SENTENCES[0]}", ("-v", "en-us", *LOUD_FAST), NEUTRAL_SENTENCES[0]),
    (f"loud/fast/high, female: {NEUTRAL_SENTENCES[1]}", ("-v", "en-us+f3", *LOUD_FAST), NEUTRAL_SENTENCES[1]),
    (f"quiet/slow/low, male: {NEUTRAL_SENTENCES[0]}", ("-v", "en-us", *QUIET_SLOW), NEUTRAL_SENTENCES[0]),
    (f"quiet/slow/low, female: {NEUTRAL_SENTENCES[1]}", ("-v", "en-us+f3", *QUIET_SLOW), NEUTRAL_SENTENCES[1]),
)


def espeak(text: str, options: tuple[str, ...] = ()) -> np.ndarray:
    """espeak-ng speech, float32 mono at 16 kHz."""
    wav = subprocess.run(["espeak-ng", "--stdout", *options, text], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        rate = w.getframerate()
    return np.asarray(soxr.resample(pcm, rate, RATE), dtype=np.float32)


def calibration() -> None:
    """Print the top-3 emotions (with and without the transcript) of every utterance in CALIBRATION_SET."""
    acoustic = importlib.import_module("openevi.speech.prosody.acoustic")

    def top3(scores: dict[str, float]) -> str:
        best = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:3]
        return ", ".join(f"{name} {score:.2f}" for name, score in best)

    print("| utterance (espeak-ng) | voice only: top 3 | with transcript: top 3 | max score |")
    print("|---|---|---|---|")
    for label, options, text in CALIBRATION_SET:
        audio = espeak(text, options)
        voice_only = acoustic.analyze(audio).scores
        with_text = acoustic.analyze(audio, text=text).scores
        print(f"| {label} | {top3(voice_only)} | {top3(with_text)} | {max(with_text.values()):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--provider", choices=("acoustic", "opensmile"), default="acoustic")
    parser.add_argument("--calibration", action="store_true", help="print the calibration table and exit")
    args = parser.parse_args()
    if args.calibration:
        calibration()
        return

    # Imported here so that the import itself is measured (numpy is already loaded).
    start = time.perf_counter()
    acoustic = importlib.import_module("openevi.speech.prosody.acoustic")  # features.py and vaderSentiment
    if args.provider == "opensmile":
        egemaps = importlib.import_module("openevi.speech.prosody.egemaps")  # pulls in opensmile and pandas
        extractor = egemaps.extract
        reference = egemaps.OPENSMILE_REFERENCE
    else:
        extractor = acoustic.voice.extract
        reference = acoustic.REFERENCE
    import_s = time.perf_counter() - start
    start = time.perf_counter()
    extractor(np.zeros(RATE // 2, dtype=np.float32), RATE)  # first extraction builds what it caches
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    acoustic._sentiment()
    lexicon_s = time.perf_counter() - start
    print(
        f"provider {args.provider}: import {import_s * 1000:.0f} ms, first extraction {init_s * 1000:.0f} ms, "
        f"VADER lexicon {lexicon_s * 1000:.0f} ms, runs={args.runs}"
    )
    # CPU time (all threads of this process) hardly depends on other load on the machine; wall time does.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| utterance s | wall ms (median) | wall ms (min) | CPU ms (median) | CPU ms (min) | CPU / audio |")
    print("|---|---|---|---|---|---|")
    for seconds in (1.0, 3.0, 6.0):
        audio = _speech(seconds)
        walls, cpus = [], []
        for _ in range(args.runs):
            wall, cpu = time.perf_counter(), time.process_time()
            acoustic.analyze(audio, text="Thanks, that sounds wonderful.", reference=reference, extractor=extractor)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        cpu_ms = statistics.median(cpus) * 1000
        print(
            f"| {seconds:.0f} | {statistics.median(walls) * 1000:.0f} | {min(walls) * 1000:.0f} "
            f"| {cpu_ms:.0f} | {min(cpus) * 1000:.0f} | {cpu_ms / 1000 / seconds:.3f} |"
        )


if __name__ == "__main__":
    main()
