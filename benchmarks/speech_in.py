"""Speech input: decode cost, Silero VAD per frame, Whisper load/latency/real-time factor and WER.

Speech is generated with espeak-ng (voices en-us and en-gb, two speaking rates).
Run: .venv/bin/python -m benchmarks.speech_in [--runs N] [--windows full,10] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from openevi.audio.decode import AudioDecoder
from openevi.speech.asr.whisper import WhisperASR, assemble_packaged_model
from openevi.speech.vad.silero import FRAME_SAMPLES, SileroVAD
from tests.support.speech import SENTENCES, encode, speak, split_evenly, word_error_rate

RATE = 16_000
UTTERANCES = {
    "1 s": "Yes, please do.",
    "3 s": SENTENCES[1],
    "6 s": f"{SENTENCES[2]} {SENTENCES[4]}",
}
# 24 utterances: each sentence in two of the four voice/rate combinations.
WER_SET = [
    (sentence, voice, rate)
    for i, sentence in enumerate(SENTENCES)
    for voice, rate in ((("en-us", 140), ("en-gb", 180)) if i % 2 == 0 else (("en-us", 180), ("en-gb", 140)))
]


def bench_decode() -> None:
    speech = np.concatenate([speak(s) for s in SENTENCES[:4]])
    seconds = len(speech) / RATE
    data = encode(speech, fmt="webm", codec="libopus")
    chunks = split_evenly(data, duration_s=seconds, chunk_ms=60)
    start = time.perf_counter()
    decoder = AudioDecoder()
    for chunk in chunks:
        decoder.push(chunk)
    decoder.flush()
    elapsed = time.perf_counter() - start
    print(f"decode webm/opus 48 kHz -> 16 kHz, 60 ms chunks: {1000 * elapsed / seconds:.2f} ms per second of audio")


def bench_vad() -> None:
    start = time.perf_counter()
    vad = SileroVAD()
    load = time.perf_counter() - start
    audio = np.concatenate([speak(s) for s in SENTENCES[:8]])
    stream = vad.stream()
    frames = [audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(len(audio) // FRAME_SAMPLES)]
    for frame in frames[:20]:
        stream.probability(frame)  # warm
    start = time.perf_counter()
    for frame in frames:
        stream.probability(frame)
    per_frame = (time.perf_counter() - start) / len(frames)
    print(f"Silero VAD: load {load:.2f} s; {1000 * per_frame:.3f} ms per 32 ms frame ({len(frames)} frames)")


async def bench_asr(window_s: float | None, runs: int, cache_dir: Path, model: str = "whisper-base") -> None:
    name = "30 s (Whisper's default)" if window_s is None else f"{window_s:g} s minimum"
    asr = WhisperASR(model=model, cache_dir=cache_dir, window_s=window_s)
    start = time.perf_counter()
    await asr.load(warm=False)
    load = time.perf_counter() - start
    start = time.perf_counter()
    await asr.load(warm=True)
    warm = time.perf_counter() - start
    print(f"\n{model} int8, 2 threads, greedy; encoder window {name}: load {load:.2f} s, warm-up {warm:.2f} s")
    for label, text in UTTERANCES.items():
        audio = speak(text)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            result = await asr.transcribe(audio)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        seconds = len(audio) / RATE
        print(
            f"  {label} ({seconds:.1f} s): median {median:.2f} s, min {min(times):.2f} s, "
            f"RTF {median / seconds:.2f}, WER {word_error_rate(text, result.text):.2f}"
        )
    errors, words, total_time, total_audio = 0.0, 0, 0.0, 0.0
    for sentence, voice, rate in WER_SET:
        audio = speak(sentence, voice=voice, rate=rate)
        start = time.perf_counter()
        text = (await asr.transcribe(audio)).text
        total_time += time.perf_counter() - start
        total_audio += len(audio) / RATE
        n = len(sentence.split())
        errors += word_error_rate(sentence, text) * n
        words += n
    print(
        f"  WER over {len(WER_SET)} utterances ({words} words, en-us/en-gb, 140/180 wpm): "
        f"{errors / words:.3f}; RTF {total_time / total_audio:.2f}"
    )
    await asr.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--windows", default="full,10", help="encoder windows to compare: 'full' or seconds")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where to assemble the model (default: temp)")
    parser.add_argument("--asr-model", default="whisper-base", help="whisper-base | whisper-tiny.en | a model dir")
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.1f}")
    bench_decode()
    bench_vad()
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        start = time.perf_counter()
        assemble_packaged_model(cache_dir)
        print(f"Whisper model assembly (first start only): {time.perf_counter() - start:.2f} s")
        for window in args.windows.split(","):
            await bench_asr(None if window == "full" else float(window), args.runs, cache_dir, args.asr_model)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
