"""Barge-in latency: the user starts talking over the assistant → `user_interruption`, through the SDK.

Per trial: a chat whose config sets `interruption.min_interruption_ms`, a microphone that stays open
(silence at real-time pace in 20 ms chunks), a typed request for a long answer; once the answer's
audio is playing, the client speaks over it. Measured: time from the first voiced sample of that
speech to the `user_interruption` message. Audio output is paced to playback (the default lead), as
a real listener would hear it. The floor is min_interruption_ms plus the VAD's onset.

    .venv/bin/python -m benchmarks.barge_in --trials 20 --min-interruption-ms 200

Traffic goes only to the server this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import time

import numpy as np
from hume import AsyncHumeClient
from hume.empathic_voice import AudioInput, SessionSettings, UserInput

from benchmarks.stack import bench_server
from benchmarks.voice import CHUNK_S, SILENCE_CHUNK, pct
from tests.integration.test_voice import RATE, linear16, speak
from tests.server import ServerProcess

LONG_ANSWER = " ".join(f"This is sentence {n} of a long answer that keeps going for a while." for n in range(40))
# Generated in well under a second, but about five seconds to play: barge-in while only playback runs.
SHORT_ANSWER = "Here is a short answer. It has three sentences. They take a few seconds to say."
OVER_TALK = "Wait, stop, stop, I have a question for you"


def speech_start_offset(samples: np.ndarray) -> float:
    """Seconds from the start of the clip to its first clearly voiced sample."""
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return loud[0] / RATE if loud.size else 0.0


async def trial(server: ServerProcess, config_id: str, clip: np.ndarray) -> float | None:
    """One barge-in; ms from speech onset to user_interruption (None: no interruption came)."""
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        audio_started = asyncio.Event()
        interrupted = asyncio.Event()
        interrupted_at = 0.0

        async def reader() -> None:
            nonlocal interrupted_at
            while True:
                message = await socket.recv()
                if message.type == "audio_output":
                    audio_started.set()
                elif message.type == "user_interruption" and not interrupted.is_set():
                    interrupted_at = time.perf_counter()
                    interrupted.set()

        async def send(chunk: bytes) -> None:
            await socket.send_publish(AudioInput(data=base64.b64encode(chunk).decode()))

        read = asyncio.create_task(reader())
        clock = time.perf_counter()

        async def tick(chunk: bytes) -> None:
            nonlocal clock
            clock += CHUNK_S
            await asyncio.sleep(max(0.0, clock - time.perf_counter()))
            await send(chunk)

        try:
            await socket.send_publish(UserInput(text="Tell me a long story please."))
            async with asyncio.timeout(60):
                while not audio_started.is_set():
                    await tick(SILENCE_CHUNK)
            for _ in range(50):  # one second into the answer
                await tick(SILENCE_CHUNK)
            data = linear16(clip)
            step = int(RATE * CHUNK_S) * 2
            onset = None
            onset_offset = speech_start_offset(clip)
            for start in range(0, len(data), step):
                await tick(data[start : start + step])
                if onset is None and start / 2 / RATE >= onset_offset:
                    onset = time.perf_counter()
                if interrupted.is_set():
                    break
            async with asyncio.timeout(10):
                while not interrupted.is_set():
                    await tick(SILENCE_CHUNK)
        except TimeoutError:
            return None
        finally:
            read.cancel()
    assert onset is not None
    return (interrupted_at - onset) * 1000


async def run(server: ServerProcess, trials: int, min_ms: int) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    config = await client.empathic_voice.configs.create_config(
        name=f"barge-{time.time_ns()}", evi_version="3", interruption={"min_interruption_ms": min_ms}
    )
    assert config is not None and config.id is not None
    clip = np.concatenate([np.zeros(int(RATE * 0.2), dtype=np.float32), speak(OVER_TALK)])
    await trial(server, config.id, clip)  # warm-up
    results = [await trial(server, config.id, clip) for _ in range(trials)]
    measured = [r for r in results if r is not None]
    load = os.getloadavg()[0]
    print(f"\nbarge-in, min_interruption_ms={min_ms}, {len(measured)}/{trials} interrupted, load {load:.1f}")
    if measured:
        p50, p95 = statistics.median(measured), pct(measured, 0.95)
        print(f"  speech onset → user_interruption ms: p50 {p50:.0f}  p95 {p95:.0f}  max {max(measured):.0f}")
        print(f"  over min_interruption_ms: p50 {p50 - min_ms:.0f}  p95 {p95 - min_ms:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--min-interruption-ms", type=int, default=200)
    parser.add_argument(
        "--answer", choices=["long", "short"], default="long", help="short: the turn is done, only playback runs"
    )
    args = parser.parse_args()
    env = {"OPENEVI_AUDIO_LEAD_MS": "1500"}
    with bench_server("scripted", LONG_ANSWER if args.answer == "long" else SHORT_ANSWER, extra_env=env) as server:
        print(f"answer: {args.answer}")
        asyncio.run(run(server, args.trials, args.min_interruption_ms))


if __name__ == "__main__":
    main()
