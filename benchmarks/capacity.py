"""How many concurrent voice chats one server holds at voice-to-voice p95 ≤ the silence window + 500 ms.

Each chat is a microphone that stays open: 100 ms chunks at real-time pace (chunk i leaves at
i * 100 ms of the clock), a spoken question (espeak-ng) every `--period` seconds and silence in
between. `linear16` sends 16 kHz PCM (after `session_settings.audio`); `webm` sends a
MediaRecorder-like webm/opus stream cut into 100 ms timeslices (`tests/support/speech.py::
encode_timesliced`). Chats start staggered over one period, so turns arrive evenly, not all at once.
Voice to voice = the question's last voiced sample → the first `audio_output` after it. The model
is the scripted one (`tests/support/scripted_llm.py`, two words every 20 ms), so the numbers are
openevi's own; the config is the default (800 ms end-of-turn silence → the limit is 1300 ms).

The chat counts of `--chats` are tried in increasing order; each build (this checkout and every
`--server-path`) is measured at each count in turn, side by side, until its p95 goes over the limit
(or a turn goes unanswered); its capacity is the largest count that passed. Server CPU seconds per
turn come from /proc for the server process and its workers.

    .venv/bin/python -m benchmarks.capacity --chats 2,4,6,8,10,12 --formats linear16,webm \
        --server-path /tmp/openevi-before      # old build: git worktree add /tmp/openevi-before b6f5430
    .venv/bin/python -m benchmarks.capacity --chats 8,12,16 --workers 2

Traffic goes only to the servers this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import websockets

from benchmarks.voice import SENTENCES as QUESTIONS
from tests.server import free_port
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.support.speech import RATE, encode_timesliced, speak, to_linear16

ROOT = Path(__file__).resolve().parent.parent
SLICE_S = 0.1
API_KEY = "bench-key-0123456789abcdef"
REPLY = "Sure. Here is a short answer for you."
SILENCE_MS = 800  # the default end_of_turn_silence_ms
LIMIT_MS = SILENCE_MS + 500


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Stream:
    """One chat's audio: the chunks to send every 100 ms and the seconds at which each question ends."""

    chunks: list[bytes]
    ends: list[float]


def make_stream(fmt: str, first: int, turns: int, period_s: float) -> Stream:
    """`turns` questions starting with QUESTIONS[first], one per period, after 1 s of silence."""
    parts, ends, at = [np.zeros(RATE, dtype=np.float32)], [], 1.0
    for i in range(turns):
        speech = speak(QUESTIONS[(first + i) % len(QUESTIONS)])
        loud = np.flatnonzero(np.abs(speech) > 0.02)
        ends.append(at + (loud[-1] + 1) / RATE)
        pad = np.zeros(max(int(RATE * period_s) - speech.size, RATE), dtype=np.float32)
        parts += [speech, pad]
        at += (speech.size + pad.size) / RATE
    audio = np.concatenate(parts)
    if fmt == "webm":
        return Stream(encode_timesliced(audio, slice_ms=round(SLICE_S * 1000)), ends)
    step = int(RATE * SLICE_S)
    return Stream([to_linear16(audio[s : s + step]) for s in range(0, audio.size, step)], ends)


async def voice_chat(url: str, fmt: str, stream: Stream, delay_s: float) -> tuple[list[float], int]:
    """One chat; (ms from each question's end to the next first audio_output, unanswered questions)."""
    await asyncio.sleep(delay_s)
    first_audio: list[float] = []
    async with websockets.connect(url, max_size=None, open_timeout=60) as socket:
        await socket.recv()  # chat_metadata
        if fmt == "linear16":
            settings = {
                "type": "session_settings",
                "audio": {"encoding": "linear16", "sample_rate": RATE, "channels": 1},
            }
            await socket.send(orjson.dumps(settings).decode())

        async def reader() -> None:
            async for raw in socket:
                message = orjson.loads(raw)
                if message.get("type") == "audio_output" and message.get("index") == 0:
                    first_audio.append(time.perf_counter())

        read = asyncio.create_task(reader())
        start = clock = time.perf_counter()
        for chunk in stream.chunks:
            message = {"type": "audio_input", "data": base64.b64encode(chunk).decode()}
            await socket.send(orjson.dumps(message).decode())
            clock += SLICE_S
            await asyncio.sleep(max(0.0, clock - time.perf_counter()))
        await asyncio.sleep(3.0)  # the last answer
        read.cancel()
    latencies, missing = [], 0
    for end in stream.ends:
        at = start + end
        after = [t for t in first_audio if t > at]
        if after and after[0] - at < 7.0:  # an answer later than that belongs to nothing
            latencies.append((after[0] - at) * 1000)
        else:
            missing += 1
    return latencies, missing


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers), as `ps` reports."""
    listed = subprocess.run(
        ["ps", "-o", "times=", "-p", str(pid), "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return float(sum(int(line) for line in listed.split() if line.isdigit()))


@dataclass
class Server:
    name: str
    path: Path
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v0/evi/chat?api_key={API_KEY}"


@contextlib.contextmanager
def running_server(name: str, path: Path, llm_url: str, workers: int, extra_env: dict[str, str]) -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEVI_")}
        env |= {
            "PYTHONPATH": str(path),
            "OPENEVI_DATA_DIR": tmp,
            "OPENEVI_API_KEY": API_KEY,
            "OPENEVI_LOG_LEVEL": "warning",
            "OPENEVI_LLM_PROVIDER": "OPEN_AI",
            "OPENEVI_LLM_MODEL": "scripted",
            "OPENEVI_OPENAI_BASE_URL": llm_url,
            "OPENEVI_OPENAI_API_KEY": "x",
            "OPENEVI_OUTBOUND_ALLOW": "127.0.0.1/32",
            "OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS": "1000",
            "OPENEVI_ACCOUNT_MAX_CHATS_PER_MINUTE": "0",
            **extra_env,
        }
        command = [sys.executable, "-m", "openevi.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if workers > 1:
            command += ["--workers", str(workers)]
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 - closed below
        # cwd is the temporary directory, so `-m` imports openevi from PYTHONPATH, not from here.
        proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError((Path(tmp) / "server.log").read_text())
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            yield Server(name, path, proc, port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@dataclass
class Result:
    latencies: list[float]
    missing: int
    cpu_per_turn: float

    @staticmethod
    def pooled(runs: list[Result]) -> Result:
        """The runs' turns together."""
        turns = [len(r.latencies) + r.missing for r in runs]
        cpu = sum(r.cpu_per_turn * n for r, n in zip(runs, turns, strict=True)) / max(1, sum(turns))
        return Result([x for r in runs for x in r.latencies], sum(r.missing for r in runs), cpu)

    @property
    def passed(self) -> bool:
        return bool(self.latencies) and self.missing == 0 and pct(self.latencies, 0.95) <= LIMIT_MS


async def measure(server: Server, fmt: str, chats: int, streams: list[Stream], period_s: float) -> Result:
    cpu = cpu_seconds(server.proc.pid)
    results = await asyncio.gather(
        *(voice_chat(server.url, fmt, streams[i % len(streams)], i * period_s / chats) for i in range(chats))
    )
    cpu = cpu_seconds(server.proc.pid) - cpu
    latencies = [x for r, _ in results for x in r]
    turns = sum(len(s.ends) for s in (streams[i % len(streams)] for i in range(chats)))
    return Result(latencies, sum(m for _, m in results), cpu / turns)


def row(name: str, fmt: str, count: int, result: Result) -> str:
    """One line of the results table."""
    p50 = statistics.median(result.latencies) if result.latencies else float("nan")
    p95 = pct(result.latencies, 0.95) if result.latencies else float("nan")
    verdict = "yes" if result.passed else "no"
    return (
        f"{name} | {fmt} | {count} | {p50:.0f} | {p95:.0f} | {result.missing} | {result.cpu_per_turn:.2f} | "
        f"{os.getloadavg()[0]:.1f} | {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", default="2,4,6,8,10,12", help="chat counts to try, increasing")
    parser.add_argument("--formats", default="linear16,webm")
    parser.add_argument("--turns", type=int, default=2, help="questions per chat")
    parser.add_argument("--period", type=float, default=8.0, help="seconds between a chat's questions")
    parser.add_argument("--repeats", type=int, default=2, help="runs per build and count, in ABBA order")
    parser.add_argument("--workers", type=int, default=1, help="openevi serve --workers N, for every build")
    parser.add_argument("--server-path", type=Path, action="append", default=[], help="another checkout to compare")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for this checkout's server only")
    args = parser.parse_args()
    counts = [int(x) for x in args.chats.split(",") if x]
    formats = [f for f in args.formats.split(",") if f]
    extra = dict(item.split("=", 1) for item in args.env)
    builds = [("this", ROOT, extra)] + [(str(p), p, {}) for p in args.server_path]
    streams = {fmt: [make_stream(fmt, i, args.turns, args.period) for i in range(len(QUESTIONS))] for fmt in formats}
    llm = ScriptedLLM(default=Reply(REPLY, chunk_words=2, delay=0.02)).start()
    print(f"limit: voice-to-voice p95 ≤ {LIMIT_MS} ms; a question every {args.period:.0f} s; workers {args.workers}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    capacity: dict[tuple[str, str], int] = {}
    try:
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(running_server(name, path, llm.base_url, args.workers, env))
                for name, path, env in builds
            ]
            for server in servers:  # models load in the background after /healthz: wait for an answer
                for fmt in formats:
                    warm = [make_stream(fmt, 0, 1, 3.0)]
                    for _ in range(10):
                        if asyncio.run(measure(server, fmt, 1, warm, 3.0)).missing == 0:
                            break
            print("build | format | chats | v2v p50 ms | p95 ms | unanswered | server CPU s/turn | load | pass")
            for fmt in formats:
                alive = list(servers)
                for count in counts:
                    results: dict[str, list[Result]] = {server.name: [] for server in alive}
                    for repeat in range(args.repeats):  # ABBA: each build first as often as last
                        for server in alive if repeat % 2 == 0 else alive[::-1]:
                            results[server.name].append(
                                asyncio.run(measure(server, fmt, count, streams[fmt], args.period))
                            )
                    for server in list(alive):
                        result = Result.pooled(results[server.name])
                        print(row(server.name, fmt, count, result), flush=True)
                        if result.passed:
                            capacity[(server.name, fmt)] = count
                        else:
                            alive.remove(server)
                    if not alive:
                        break
    finally:
        llm.stop()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for (name, fmt), count in sorted(capacity.items()):
        print(f"capacity: {name} {fmt}: {count} chats")


if __name__ == "__main__":
    main()
