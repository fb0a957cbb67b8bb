"""Piper TTS latency: load time, time to first chunk and real-time factor for three text lengths.

Run: .venv/bin/python -m benchmarks.tts [--onnx-threads N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from openevi.audio.wav import pcm_duration_ms
from openevi.speech.tts.piper import PiperTTS
from openevi.speech.voices import DEFAULT_VOICE

TEXTS = {
    "short": "Sure, I can help.",
    "medium": "I found three flights to Chicago tomorrow morning, and the earliest one leaves at seven fifteen.",
    "long": (
        "Thanks for waiting while I looked into that for you. "
        "Your order shipped on Monday from our warehouse in Denver, and the carrier expects it on Thursday. "
        "If it has not arrived by Friday evening, just let me know and I will send a replacement right away."
    ),
}


async def _one(tts: PiperTTS, text: str) -> tuple[float, float, float, int, float]:
    """Seconds to first chunk, total seconds, audio seconds, chunk count, CPU seconds (all threads)."""
    start = time.perf_counter()
    cpu_start = time.process_time()
    first = 0.0
    audio_ms = 0.0
    chunks = 0
    async for chunk in tts.synthesize(text, voice=DEFAULT_VOICE):
        if not chunks:
            first = time.perf_counter() - start
        chunks += 1
        audio_ms += pcm_duration_ms(chunk, tts.sample_rate)
    return first, time.perf_counter() - start, audio_ms / 1000, chunks, time.process_time() - cpu_start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx-threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tts = PiperTTS(onnx_threads=args.onnx_threads)
    start = time.perf_counter()
    await tts.load(DEFAULT_VOICE, warm=False)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    await tts.load(DEFAULT_VOICE)  # already loaded: this is the warm-up synthesis alone
    warm_s = time.perf_counter() - start
    print(f"voice {DEFAULT_VOICE.model}, onnx_threads={args.onnx_threads}, runs={args.runs} (medians)")
    print(f"load {load_s:.2f} s, warm-up synthesis {warm_s:.2f} s")
    # CPU RTF (CPU seconds per audio second) hardly depends on other load; wall RTF does.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| text | words | audio s | chunks | first chunk ms | total ms | RTF (wall) | RTF (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, text in TEXTS.items():
        runs = [await _one(tts, text) for _ in range(args.runs)]
        first = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        audio = statistics.median(r[2] for r in runs)
        rtf = statistics.median(r[1] / r[2] for r in runs)
        cpu_rtf = statistics.median(r[4] / r[2] for r in runs)
        print(
            f"| {label} | {len(text.split())} | {audio:.2f} | {runs[0][3]} | {first * 1000:.0f} "
            f"| {total * 1000:.0f} | {rtf:.3f} | {cpu_rtf:.3f} |"
        )
    await tts.aclose()


if __name__ == "__main__":
    asyncio.run(main())
