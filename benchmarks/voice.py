"""Voice-to-voice latency: end of the user's speech → first audio_output byte, through the official SDK.

A client streams espeak-ng speech as linear16 at real-time pace in 20 ms chunks (a microphone that
stays open: silence keeps flowing between turns) and measures, per turn, the time from the end of
its speech to the first `audio_output`. The server's own per-stage marks (openevi.metrics log lines)
give the breakdown: end-of-turn wait, transcript ready, first model token, first synthesized audio.

    .venv/bin/python -m benchmarks.voice --turns 20                 # scripted model
    .venv/bin/python -m benchmarks.voice --model local --turns 20   # the offline default model
    .venv/bin/python -m benchmarks.voice --model local --local-model qwen2.5-coder-1.5b --asr-model whisper-tiny.en
    .venv/bin/python -m benchmarks.voice --concurrency 1,2,4 --turns 5

Traffic goes only to the server this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
from hume import AsyncHumeClient
from hume.empathic_voice import AudioInput, SessionSettings

from benchmarks.stack import bench_server
from tests.integration.test_voice import RATE, linear16, speak
from tests.server import ServerProcess

SENTENCES = [
    "What time does the museum open tomorrow",
    "Can you recommend a good restaurant nearby",
    "How long does it take to walk to the station",
    "Is it going to rain this afternoon",
    "Please book a table for two at eight",
    "What is the capital of Australia",
    "Tell me something interesting about octopuses",
    "How much does a ticket to the concert cost",
    "Where can I buy a charger for my phone",
    "Remind me to call my sister this evening",
]
CHUNK_S = 0.02
SILENCE_CHUNK = linear16(np.zeros(int(RATE * CHUNK_S), dtype=np.float32))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def speech_end_offset(samples: np.ndarray) -> float:
    """Seconds from the start of the clip to its last clearly voiced sample."""
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return (loud[-1] + 1) / RATE if loud.size else 0.0


async def voice_chat(server: ServerProcess, config_id: str, turns: int, clips: list[np.ndarray]) -> list[float]:
    """One chat of `turns` spoken turns; returns voice-to-voice latencies in ms."""
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    latencies: list[float] = []
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        first_audio = asyncio.Event()
        turn_over = asyncio.Event()

        async def reader() -> None:
            while True:
                message = await socket.recv()
                if message.type == "audio_output":
                    first_audio.set()
                elif message.type == "assistant_end":
                    turn_over.set()
                elif message.type == "error":
                    print("  server error:", message.message)

        async def send(chunk: bytes) -> None:
            await socket.send_publish(AudioInput(data=base64.b64encode(chunk).decode()))

        read = asyncio.create_task(reader())
        clock = time.perf_counter()
        try:
            for i in range(turns):
                clip = clips[i % len(clips)]
                data = linear16(clip)
                step = int(RATE * CHUNK_S) * 2
                first_audio.clear()
                turn_over.clear()
                started = None
                for start in range(0, len(data), step):
                    clock += CHUNK_S
                    await asyncio.sleep(max(0.0, clock - time.perf_counter()))
                    if started is None:
                        started = time.perf_counter()
                    await send(data[start : start + step])
                assert started is not None
                speech_end = started + speech_end_offset(clip)
                async with asyncio.timeout(60):
                    while not first_audio.is_set():  # the microphone stays open: silence flows on
                        clock += CHUNK_S
                        await asyncio.sleep(max(0.0, clock - time.perf_counter()))
                        await send(SILENCE_CHUNK)
                latencies.append((time.perf_counter() - speech_end) * 1000)
                async with asyncio.timeout(60):
                    while not turn_over.is_set():
                        clock += CHUNK_S
                        await asyncio.sleep(max(0.0, clock - time.perf_counter()))
                        await send(SILENCE_CHUNK)
                for _ in range(25):  # a breath between turns
                    clock += CHUNK_S
                    await asyncio.sleep(max(0.0, clock - time.perf_counter()))
                    await send(SILENCE_CHUNK)
        finally:
            read.cancel()
    return latencies


def stage_breakdown(log_path: Path) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for line in log_path.read_text().splitlines():
        found = re.search(r"turn-timings (\{.*\})", line)
        if found:
            for name, ms in json.loads(found.group(1))["stages"].items():
                stages.setdefault(name, []).append(ms)
    return stages


async def run(server: ServerProcess, turns: int, levels: list[int], silence_ms: int) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    config = await client.empathic_voice.configs.create_config(
        name=f"bench-{time.time_ns()}", evi_version="3", turn_detection={"end_of_turn_silence_ms": silence_ms}
    )
    assert config is not None and config.id is not None
    clips = [np.concatenate([speak(s), np.zeros(int(RATE * 0.1), dtype=np.float32)]) for s in SENTENCES]
    await voice_chat(server, config.id, 1, clips)  # warm-up
    server.log_path.write_text("")
    single = await voice_chat(server, config.id, turns, clips)
    print(f"\nvoice-to-voice, 1 chat, {len(single)} turns, end_of_turn_silence_ms={silence_ms}")
    p50, p95 = statistics.median(single), pct(single, 0.95)
    print(f"  end of speech → first audio_output ms: p50 {p50:.0f}  p95 {p95:.0f}  max {max(single):.0f}")
    print(f"  processing on top of the silence window: p50 {p50 - silence_ms:.0f}  p95 {p95 - silence_ms:.0f}")
    print("  stage (ms after the server saw speech end):   p50     p95")
    for name, values in stage_breakdown(server.log_path).items():
        print(f"    {name:42s} {statistics.median(values):6.0f}  {pct(values, 0.95):6.0f}")
    for level in levels:
        if level == 1:
            continue
        results = await asyncio.gather(
            *(voice_chat(server, config.id, max(3, turns // 4), clips) for _ in range(level))
        )
        flat = [x for chat in results for x in chat]
        print(f"  {level} concurrent voice chats: p50 {statistics.median(flat):.0f}  p95 {pct(flat, 0.95):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--concurrency", default="1")
    parser.add_argument("--model", choices=["scripted", "local"], default="scripted")
    parser.add_argument("--silence-ms", type=int, default=500)
    parser.add_argument("--local-model", default=None, help="OPENEVI_LOCAL_LLM_MODEL for --model local")
    parser.add_argument("--asr-model", default=None, help="OPENEVI_ASR_MODEL (whisper-base, whisper-tiny.en)")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x]
    choice = {"OPENEVI_LOCAL_LLM_MODEL": args.local_model, "OPENEVI_ASR_MODEL": args.asr_model}
    env = {k: v for k, v in choice.items() if v}
    with bench_server(args.model, "Sure. Here is a short answer for you.", log_level="info", extra_env=env) as server:
        print(f"model: {args.model} {env}; load average {os.getloadavg()[0]:.1f}")
        asyncio.run(run(server, args.turns, levels, args.silence_ms))


if __name__ == "__main__":
    main()
