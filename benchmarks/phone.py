"""Phone voice-to-voice latency (Twilio Media Streams) next to the chat WebSocket, on one server.

The phone client does what Twilio does (tests/support/twilio_client.py): POST the voice webhook,
open the `<Stream>`, send espeak-ng speech as μ-law 8 kHz in 20 ms frames at real-time pace and keep
the line open with silence. Latency = end of the user's speech (last voiced sample) → first outbound
`media` frame. The WebSocket numbers come from benchmarks/voice.py's client (linear16 16 kHz,
first `audio_output`), same server, same config, same sentences.

    .venv/bin/python -m benchmarks.phone --turns 10                 # scripted model
    .venv/bin/python -m benchmarks.phone --turns 10 --model local   # the offline default model

Traffic goes only to the server this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from hume import AsyncHumeClient

from benchmarks.stack import bench_server
from benchmarks.voice import SENTENCES, pct, voice_chat
from tests.integration.test_voice import RATE as WS_RATE
from tests.integration.test_voice import speak as speak_16k
from tests.server import ServerProcess
from tests.support.speech import speak
from tests.support.twilio_client import FRAME, RATE, PhoneCall

AUTH_TOKEN = "bench-twilio-token"
QUIET_S = 0.6  # no new audio for this long: the answer is over
ROUNDS = 5


def speech_end_s(samples: np.ndarray, rate: int) -> float:
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return (loud[-1] + 1) / rate if loud.size else 0.0


async def phone_call(server: ServerProcess, config_id: str, turns: int, clips: list[np.ndarray]) -> list[float]:
    """One call of `turns` spoken turns; returns voice-to-voice latencies in ms."""
    query = httpx.QueryParams({"config_id": config_id, "api_key": server.api_key})
    call = PhoneCall(server.base_url, f"/v0/evi/twilio?{query}", auth_token=AUTH_TOKEN)
    answer = await asyncio.to_thread(call.dial)
    latencies: list[float] = []
    silence = np.zeros(FRAME, dtype=np.float32)
    async with call.stream(answer) as line:
        for i in range(turns):
            clip = clips[i % len(clips)]
            heard_before = len(line.of("media"))
            started = time.perf_counter()
            await line.say(clip)
            speech_end = started + speech_end_s(clip, RATE)
            async with asyncio.timeout(60):
                while len(line.of("media")) == heard_before:  # the line stays open: silence flows on
                    await line.say(silence)
            latencies.append((line.media_times[heard_before] - speech_end) * 1000)
            async with asyncio.timeout(60):
                count, quiet_since = len(line.of("media")), time.perf_counter()
                while time.perf_counter() - quiet_since < QUIET_S:
                    await line.say(silence)
                    if len(line.of("media")) != count:
                        count, quiet_since = len(line.of("media")), time.perf_counter()
            for _ in range(25):  # a breath between turns
                await line.say(silence)
        await line.hang_up()
    return latencies


async def run(server: ServerProcess, turns: int, silence_ms: int) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    config = await client.empathic_voice.configs.create_config(
        name=f"bench-{time.time_ns()}", evi_version="3", turn_detection={"end_of_turn_silence_ms": silence_ms}
    )
    assert config is not None and config.id is not None
    tail = 0.1
    ws_clips = [np.concatenate([speak_16k(s), np.zeros(int(WS_RATE * tail), np.float32)]) for s in SENTENCES]
    phone_clips = [
        np.concatenate([speak(s, sample_rate=RATE), np.zeros(int(RATE * tail), np.float32)]) for s in SENTENCES
    ]
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    await voice_chat(server, config.id, 1, ws_clips)  # warm-up
    await phone_call(server, config.id, 1, phone_clips)
    # Alternate the two paths in rounds, so that load from other work on the machine hits both alike.
    ws_name, phone_name = "chat WebSocket (linear16 16 kHz → first audio_output)", "phone (μ-law 8 kHz → first media)"
    results: dict[str, list[float]] = {ws_name: [], phone_name: []}
    chat_ids: dict[str, set[str]] = {ws_name: set(), phone_name: set()}
    per_round = max(1, turns // ROUNDS)
    server.log_path.write_text("")
    for r in range(ROUNDS):
        at = r * per_round % len(SENTENCES)  # each round speaks the next sentences
        results[ws_name] += await voice_chat(server, config.id, per_round, ws_clips[at:] + ws_clips[:at])
        chat_ids[ws_name].add(await latest_chat(client))
        results[phone_name] += await phone_call(server, config.id, per_round, phone_clips[at:] + phone_clips[:at])
        chat_ids[phone_name].add(await latest_chat(client))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"\nvoice-to-voice, {per_round * ROUNDS} turns each, end_of_turn_silence_ms={silence_ms}")
    for name, values in results.items():
        p50, p95 = statistics.median(values), pct(values, 0.95)
        print(f"  {name:52s} p50 {p50:5.0f}  p95 {p95:5.0f}  max {max(values):5.0f} ms")
    print("  server stages, ms after its VAD saw the speech end (p50 / p95):")
    for name, ids in chat_ids.items():
        stages = stage_breakdown(server.log_path, ids)
        shown = ", ".join(
            f"{stage} {statistics.median(v):.0f} / {pct(v, 0.95):.0f}"
            for stage, v in stages.items()
            if stage != "speech_end"
        )
        print(f"    {name.split(' (')[0]}: {shown}")


async def latest_chat(client: AsyncHumeClient) -> str:
    pager = await client.empathic_voice.chats.list_chats(page_size=1, ascending_order=False)
    chat = next(iter(pager.items or []))
    return chat.id


def stage_breakdown(log_path: Path, chat_ids: set[str]) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for line in log_path.read_text().splitlines():
        found = re.search(r"turn-timings (\{.*\})", line)
        if found and (record := json.loads(found.group(1)))["chat_id"] in chat_ids:
            for stage, ms in record["stages"].items():
                stages.setdefault(stage, []).append(ms)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--model", choices=["scripted", "local"], default="scripted")
    parser.add_argument("--silence-ms", type=int, default=500)
    args = parser.parse_args()
    env = {"OPENEVI_TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    with bench_server(args.model, "Sure. Here is a short answer for you.", log_level="info", extra_env=env) as server:
        print(f"model: {args.model}")
        asyncio.run(run(server, args.turns, args.silence_ms))


if __name__ == "__main__":
    main()
