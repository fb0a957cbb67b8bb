"""Whisper under a stream of utterances from many chats: latency and CPU per utterance, per setting.

Utterances (the twelve espeak-ng sentences of `tests/support/speech.py`, in turn) arrive at random
(Poisson, `--gap` seconds apart on average, the same sequence for every setting) at one recognizer;
each setting (`WhisperASR` lanes x threads, batch size) is run `--rounds` times in ABBA order, so
load from other work hits all alike. Latency = submit → transcript; CPU = the process's CPU time
over the run / utterances. `--parts` prices the encoder and the decoder separately per batch size.

    .venv/bin/python -m benchmarks.asr_batch --gap 0.4
    .venv/bin/python -m benchmarks.asr_batch --gap 0.25 --settings 1x2b1,2x1b1,2x1b8
    .venv/bin/python -m benchmarks.asr_batch --parts --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper.audio import pad_or_trim

from openevi.speech.asr.whisper import WhisperASR
from tests.support.speech import SENTENCES, speak


def recognizer(setting: str, cache: Path) -> WhisperASR:
    """A recognizer for a setting such as 1x2b8: one lane of two threads, batches of up to 8."""
    lanes, rest = setting.split("x")
    threads, batch = rest.split("b")
    return WhisperASR(cache_dir=cache, num_workers=int(lanes), cpu_threads=int(threads), max_batch=int(batch))


async def stream(asr: WhisperASR, clips: list[np.ndarray], gap: float, count: int) -> tuple[list[float], float]:
    """Latencies (s) of `count` utterances arriving `gap` s apart on average; CPU s per utterance."""
    rng = random.Random(1)
    latencies: list[float] = []

    async def one(clip: np.ndarray) -> None:
        started = time.perf_counter()
        await asr.transcribe(clip)
        latencies.append(time.perf_counter() - started)

    cpu = time.process_time()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(clips[i % len(clips)])))
        await asyncio.sleep(rng.expovariate(1 / gap))
    await asyncio.gather(*tasks)
    return sorted(latencies), (time.process_time() - cpu) / count


async def compare(names: list[str], gap: float, count: int, rounds: int, cache: Path) -> None:
    clips = [speak(s) for s in SENTENCES]
    recognizers = {name: recognizer(name, cache) for name in names}
    for asr in recognizers.values():
        await asr.load()
    print(f"{count} utterances, one every {gap} s on average")
    print("setting | round | p50 ms | p95 ms | CPU ms/utterance | batches of 2+")
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            asr = recognizers[name]
            before = len(asr.batch_sizes)
            latencies, cpu = await stream(asr, clips, gap, count)
            batched = sum(1 for b in asr.batch_sizes[before:] if b > 1)
            p95 = latencies[round(0.95 * (len(latencies) - 1))]
            print(
                f"{name} | {r + 1} | {1000 * statistics.median(latencies):.0f} | {1000 * p95:.0f} | "
                f"{1000 * cpu:.0f} | {batched}",
                flush=True,
            )
    for asr in recognizers.values():
        await asr.aclose()


async def parts(threads: int, cache: Path) -> None:
    """CPU of one encoder call and one decoder call per utterance, by batch size (10 s windows)."""
    asr = WhisperASR(cache_dir=cache, cpu_threads=threads)
    await asr.load()
    model = asr._load_sync()
    tokenizer = asr._tokenizer_for(model)
    prompt = model.get_prompt(tokenizer, [], True)
    features = [pad_or_trim(model.feature_extractor(speak(s))[:, :-1])[:, :1000] for s in SENTENCES[:8]]

    def best(work: object) -> float:
        times = []
        for _ in range(3):
            started = time.process_time()
            work()  # type: ignore[operator]
            times.append(time.process_time() - started)
        return min(times)

    print(f"cpu_threads={threads}: CPU ms per utterance")
    print("batch | encoder | decoder")
    for size in (1, 2, 4, 8):
        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features[:size])))
        encoded = model.model.encode(batch)
        encode = best(lambda b=batch: model.model.encode(b))
        decode = best(
            lambda e=encoded, n=size: model.model.generate(
                e, [prompt] * n, beam_size=1, max_length=60, suppress_tokens=asr._suppressed
            )
        )
        print(f"{size} | {1000 * encode / size:.0f} | {1000 * decode / size:.0f}")
    await asr.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="1x2b1,1x2b8", help="lanes x threads b batch, comma-separated")
    parser.add_argument("--gap", type=float, default=0.4, help="mean seconds between utterances")
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parts", action="store_true", help="encoder and decoder CPU by batch size instead")
    parser.add_argument("--threads", type=int, default=2, help="cpu_threads for --parts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "whisper"
        if args.parts:
            asyncio.run(parts(args.threads, cache))
        else:
            asyncio.run(compare(args.settings.split(","), args.gap, args.count, args.rounds, cache))


if __name__ == "__main__":
    main()
