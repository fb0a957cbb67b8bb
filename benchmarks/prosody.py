"""Prosody latency: set-up, then time per utterance of 1, 3 and 6 s of espeak-ng speech.

Run: .venv/bin/python -m benchmarks.prosody [--runs N] [--provider acoustic|opensmile]   (needs espeak-ng)
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
import soxr  # type: ignore[import-untyped]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--provider", choices=("acoustic", "opensmile"), default="acoustic")
    args = parser.parse_args()

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
