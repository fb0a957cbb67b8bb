"""Event-loop lag and first-audio latency with concurrent webm/opus voice chats.

The server runs in a wrapper (`--serve`) that adds a lag probe to its event loop: every 5 ms it
sleeps and records how late it woke up (what every chat in the process waits on top of its own
work). The client opens `--chats` chats at once; each streams a MediaRecorder-like webm/opus stream
(espeak-ng questions with 2.5 s pauses) as `audio_input` chunks cut every 100 ms of the clock (as a
MediaRecorder timeslice: opus is variable-rate, so byte slices would not be real time), and
measures, per turn, the time from the end of the question to the first `audio_output`.

    .venv/bin/python benchmarks/loop_lag.py --chats 8 --turns 4
    # the same client against another checkout of openevi (e.g. before a change):
    .venv/bin/python benchmarks/loop_lag.py --chats 8 --turns 4 --server-path /tmp/openevi-before

Traffic goes only to the servers this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROBE_S = 0.005
SLICE_S = 0.1  # MediaRecorder timeslice


def serve(port: int, lag_file: Path) -> None:
    """The server wrapper: openevi's app plus a lag probe on the same loop."""
    import uvicorn
    import uvloop

    from openevi.app import create_app

    lags: list[float] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(PROBE_S)
            lags.append(loop.time() - started - PROBE_S)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM after serving, which would end the process before the probe's
            # numbers are written: stop on SIGTERM ourselves instead.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: setattr(self, "should_exit", True))
            yield

    async def main() -> None:
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", http="httptools")
        server = Server(config)
        task = asyncio.create_task(probe())
        await server.serve()
        task.cancel()

    uvloop.run(main())
    lag_file.write_text(json.dumps(lags))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def chat(base_url: str, api_key: str, chunks: list[bytes], speech_ends: list[float]) -> list[float]:
    """One voice chat; ms from each question's end to the first audio_output after it.

    Chunk i is sent at i * 100 ms, as a MediaRecorder hands out its timeslices: by the clock."""
    from hume import AsyncHumeClient
    from hume.empathic_voice import AudioInput

    client = AsyncHumeClient(api_key=api_key, base_url=base_url)
    latencies: list[float] = []
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        first_audio: list[float] = []

        async def reader() -> None:
            while True:
                message = await socket.recv()
                if message.type == "audio_output" and message.index == 0:
                    first_audio.append(time.perf_counter())

        read = asyncio.create_task(reader())
        start = time.perf_counter()
        clock = start
        for chunk in chunks:
            await socket.send_publish(AudioInput(data=base64.b64encode(chunk).decode()))
            clock += SLICE_S
            await asyncio.sleep(max(0.0, clock - time.perf_counter()))
        await asyncio.sleep(3.0)  # the last answer
        read.cancel()
    for end in speech_ends:
        at = start + end
        after = [t for t in first_audio if t > at]
        if after:
            latencies.append((after[0] - at) * 1000)
    return latencies


def stream(turns: int) -> tuple[list[bytes], list[float]]:
    """A webm/opus stream of `turns` questions with pauses, in 100 ms timeslices; the questions' ends."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from tests.support.speech import RATE, encode_timesliced, speak

    questions = ["What time does the museum open", "Is it going to rain today", "How far is the station"]
    parts, ends, at = [], [], 0.0
    for i in range(turns):
        speech = speak(questions[i % len(questions)])
        loud = np.flatnonzero(np.abs(speech) > 0.02)
        ends.append(at + (loud[-1] + 1) / RATE)
        pause = np.zeros(int(RATE * 2.5), dtype=np.float32)
        parts += [speech, pause]
        at += (speech.size + pause.size) / RATE
    audio = np.concatenate(parts)
    return encode_timesliced(audio, slice_ms=round(SLICE_S * 1000)), ends


async def clients(base_url: str, api_key: str, n: int, turns: int) -> list[float]:
    chunks, ends = stream(turns)
    results = await asyncio.gather(*(chat(base_url, api_key, chunks, ends) for _ in range(n)))
    return [x for r in results for x in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lag-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chats", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--server-path", type=Path, default=ROOT, help="the openevi checkout the server runs")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.lag_file)
        return

    sys.path.insert(0, str(ROOT))
    import httpx

    from tests.server import free_port
    from tests.support.scripted_llm import Reply, ScriptedLLM

    llm = ScriptedLLM(default=Reply("Sure. Here is a short answer for you.", chunk_words=2, delay=0.02)).start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        lag_file = Path(tmp) / "lags.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEVI_")}
        env |= {
            "PYTHONPATH": str(args.server_path),
            "OPENEVI_DATA_DIR": tmp,
            "OPENEVI_API_KEY": "bench-key-0123456789",
            "OPENEVI_LLM_PROVIDER": "OPEN_AI",
            "OPENEVI_LLM_MODEL": "scripted",
            "OPENEVI_OPENAI_BASE_URL": llm.base_url,
            "OPENEVI_OPENAI_API_KEY": "x",
            "OPENEVI_AUDIO_LEAD_MS": "600000",
            "OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS": "1000",
        }
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--lag-file", str(lag_file)],
            env=env,
            cwd=tmp,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            asyncio.run(clients(base_url, "bench-key-0123456789", 1, 1))  # warm-up
            latencies = asyncio.run(clients(base_url, "bench-key-0123456789", args.chats, args.turns))
        finally:
            server.terminate()
            server.wait(timeout=60)
            llm.stop()
        lags = [x * 1000 for x in json.loads(lag_file.read_text())]
    load = os.getloadavg()[0]
    print(f"server: {args.server_path}  chats: {args.chats}  turns: {args.turns}  load: {load:.1f}")
    print(f"  event-loop lag ms: p50 {statistics.median(lags):.1f}  p99 {pct(lags, 0.99):.1f}  max {max(lags):.1f}")
    if latencies:
        p50, p95 = statistics.median(latencies), pct(latencies, 0.95)
        print(f"  speech end → first audio_output ms ({len(latencies)} turns): p50 {p50:.0f}  p95 {p95:.0f}")


if __name__ == "__main__":
    main()
