"""A hostile tenant next to a well-behaved one: does the victim notice?

One `openevi serve` (default speech stack, scripted language model, default limits) on 127.0.0.1.
A victim account runs one voice chat (espeak-ng speech as linear16 at real-time pace, as
`benchmarks/voice.py`) and four REST clients (`GET /v0/evi/configs/{id}/version/0` in a loop) for
each phase; an attacker account (or an anonymous client) does one thing during that phase:

- `baseline`: nothing;
- `wav-1hz`: `audio_input` messages holding a WAV header that claims 1 Hz plus 20 KB of zeros;
- `big-upgrades`: 300 anonymous upgrade requests to `/v0/evi/chat` with a 9 KB header (each socket's
  close time is measured), plus one client that never finishes its headers;
- `pause-flood`: one socket alternating pause/resume as fast as it can;
- `observers`: observer sockets on the attacker's chats until refused;
- `audio-flood`: 8 kHz linear16 in 1 MB messages as fast as the server takes them (user.wav size);
- `rest-flood`: 20 clients posting 100 KB prompt versions (how many are stored, database growth).

Per phase: the victim's REST p95 and voice-to-voice p95 (end of speech → first `audio_output`), the
server's RSS, and what the attack achieved. At the end, SIGTERM during a pause flood: time to exit.

    .venv/bin/python -m benchmarks.hostile --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from hume import AsyncHumeClient

from benchmarks.limits import database_bytes
from benchmarks.stack import bench_server
from benchmarks.voice import SENTENCES, pct, voice_chat
from openevi.settings import Settings
from tests.integration.test_voice import RATE, speak
from tests.server import ServerProcess


@dataclass(frozen=True)
class Target:
    """What an attacker knows of the server (picklable: attacks run in a process of their own, as a
    hostile client would, so their buffers and CPU are not the victim client's)."""

    base_url: str
    port: int
    data_dir: Path
    pid: int


Attack = Callable[[Target, str, float], Awaitable[dict[str, Any]]]


def rss_mb(server: ServerProcess) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(server: Target) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def ws_url(server: Target, path: str, key: str) -> str:
    return server.base_url.replace("http", "ws", 1) + f"{path}?api_key={key}"


async def rest_victim(server: ServerProcess, config_id: str, stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    headers = {"X-Hume-Api-Key": server.api_key}
    url = f"{server.base_url}/v0/evi/configs/{config_id}/version/0"
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:

        async def one() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    latencies[-1] = float("inf")
                await asyncio.sleep(0.05)

        await asyncio.gather(*(one() for _ in range(4)))
    return latencies


# --- attacks ---------------------------------------------------------------------------------------


async def nothing(server: Target, key: str, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(seconds)
    return {}


def one_hz_wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff" + bytes(20_000)


async def wav_1hz(server: Target, key: str, seconds: float) -> dict[str, Any]:
    message = json.dumps({"type": "audio_input", "data": base64.b64encode(one_hz_wav()).decode()})
    sent = errors = 0
    async with websockets.connect(ws_url(server, "/v0/evi/chat", key), max_size=None) as ws:
        await ws.recv()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await ws.send(message)
            sent += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while True:
                        if json.loads(await ws.recv()).get("code") == "E0201":
                            errors += 1
                            break
    return {"sent": sent, "E0201": errors}


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


async def big_upgrades(server: Target, key: str, seconds: float) -> dict[str, Any]:
    request = (
        b"GET /v0/evi/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Big: "
        + b"b" * 9000
        + b"\r\n\r\n"
    )
    fds_before = open_fds(server)

    def one() -> tuple[float, bytes]:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(60)
            started = time.perf_counter()
            sock.sendall(request)
            answer = _read_to_eof(sock)
            return time.perf_counter() - started, answer[:12]

    def slow() -> float:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(60)
            started = time.perf_counter()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            _read_to_eof(sock)
            return time.perf_counter() - started

    slow_task = asyncio.create_task(asyncio.to_thread(slow))
    results = await asyncio.gather(*(asyncio.to_thread(one) for _ in range(300)))
    await asyncio.sleep(max(0.0, seconds - 2))
    closes = [t for t, _ in results]
    answered = sum(1 for _, head in results if head.startswith(b"HTTP/1.1 431"))
    return {
        "answered_431": f"{answered}/300",
        "close_p95_ms": round(pct(closes, 0.95) * 1000),
        "close_max_ms": round(max(closes) * 1000),
        "slow_headers_closed_s": round(await slow_task, 1),
        "fds_after_minus_before": open_fds(server) - fds_before,
    }


async def pause_flood(server: Target, key: str, seconds: float) -> dict[str, Any]:
    toggles = [json.dumps({"type": t}) for t in ("pause_assistant_message", "resume_assistant_message")]
    sent = 0
    closed: object = "-"
    started = time.monotonic()
    async with websockets.connect(ws_url(server, "/v0/evi/chat", key), ping_interval=None) as ws:
        chat_id = json.loads(await ws.recv())["chat_id"]

        async def drain() -> None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                while True:
                    await ws.recv()

        reader = asyncio.create_task(drain())
        deadline = time.monotonic() + seconds
        try:
            async with asyncio.timeout(seconds):
                while time.monotonic() < deadline:
                    await ws.send(toggles[sent % 2])
                    sent += 1
                    if sent % 200 == 0:
                        await asyncio.sleep(0)
        except TimeoutError:
            pass
        except websockets.exceptions.ConnectionClosed as exc:
            closed = f"{exc.rcvd.code if exc.rcvd else None} after {time.monotonic() - started:.1f} s"
        reader.cancel()
    await asyncio.sleep(1)
    async with httpx.AsyncClient(headers={"X-Hume-Api-Key": key}, timeout=60) as client:
        page = (await client.get(f"{server.base_url}/v0/evi/chats/{chat_id}", params={"page_size": 1})).json()
    return {"toggles_sent": sent, "event_pages_of_1": page.get("total_pages"), "closed": closed}


async def observers(server: Target, key: str, seconds: float) -> dict[str, Any]:
    opened = refused = 0
    async with contextlib.AsyncExitStack() as stack:
        chats = []
        for _ in range(5):
            ws = await stack.enter_async_context(
                websockets.connect(ws_url(server, "/v0/evi/chat", key) + "&allow_connection=true")
            )
            chats.append(json.loads(await ws.recv())["chat_id"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and refused < 20:
            try:
                await stack.enter_async_context(
                    websockets.connect(ws_url(server, f"/v0/evi/chat/{chats[opened % 5]}/connect", key))
                )
                opened += 1
            except websockets.exceptions.InvalidStatus:
                refused += 1
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    return {"observers_opened": opened, "refused_429": refused}


async def audio_flood(server: Target, key: str, seconds: float) -> dict[str, Any]:
    settings = json.dumps(
        {"type": "session_settings", "audio": {"encoding": "linear16", "sample_rate": 8000, "channels": 1}}
    )
    chunk = json.dumps({"type": "audio_input", "data": base64.b64encode(bytes(1_000_000)).decode()})
    sent = 0
    async with websockets.connect(ws_url(server, "/v0/evi/chat", key), max_size=None, ping_interval=None) as ws:
        chat_id = json.loads(await ws.recv())["chat_id"]
        await ws.send(settings)
        with contextlib.suppress(TimeoutError, websockets.exceptions.ConnectionClosed):
            async with asyncio.timeout(seconds):
                while True:
                    await ws.send(chunk)
                    sent += 1
    await asyncio.sleep(2)
    track = server.data_dir / "recordings" / chat_id / "user.wav"
    size = track.stat().st_size if track.exists() else 0
    return {"mb_written_to_socket": sent, "user_wav_mb": round(size / 1e6, 1)}


async def rest_flood(server: Target, key: str, seconds: float) -> dict[str, Any]:
    before = database_bytes(server.data_dir)
    created = refused = 0
    async with httpx.AsyncClient(headers={"X-Hume-Api-Key": key}, timeout=60) as client:
        first = await client.post(f"{server.base_url}/v0/evi/prompts", json={"name": "flood", "text": "p"})
        prompt_id = first.json()["id"]
        deadline = time.monotonic() + seconds

        async def one() -> None:
            nonlocal created, refused
            while time.monotonic() < deadline:
                response = await client.post(
                    f"{server.base_url}/v0/evi/prompts/{prompt_id}", json={"text": "x" * 100_000}
                )
                if response.status_code == 201:
                    created += 1
                else:
                    refused += 1

        await asyncio.gather(*(one() for _ in range(20)))
    return {
        "versions_created": created,
        "refused": refused,
        "db_growth_mb": round((database_bytes(server.data_dir) - before) / 1e6, 1),
    }


ATTACKS: dict[str, Attack] = {
    "baseline": nothing,
    "wav-1hz": wav_1hz,
    "big-upgrades": big_upgrades,
    "pause-flood": pause_flood,
    "observers": observers,
    "audio-flood": audio_flood,
    "rest-flood": rest_flood,
}


def target_of(server: ServerProcess) -> Target:
    assert server.proc is not None
    return Target(server.base_url, server.port, server.data_dir, server.proc.pid)


def _attack_main(name: str, target: Target, key: str, seconds: float, out: Any) -> None:
    out.put(asyncio.run(ATTACKS[name](target, key, seconds)))


def in_own_process(name: str, target: Target, key: str, seconds: float) -> dict[str, Any]:
    """Run one attack in a fresh process; its result."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_attack_main, args=(name, target, key, seconds, out))
    process.start()
    result: dict[str, Any] = out.get(timeout=seconds + 120)
    process.join(30)
    return result


async def phase(
    server: ServerProcess, name: str, attack: Attack, seconds: float, config_id: str, clips: list[np.ndarray]
) -> dict[str, Any]:
    key = server.new_account_key(f"attacker-{name}")
    stop = asyncio.Event()
    rest = asyncio.create_task(rest_victim(server, config_id, stop))
    voice = asyncio.create_task(voice_chat(server, config_id, 3, clips))
    result = await asyncio.to_thread(in_own_process, name, target_of(server), key, seconds)
    try:
        voice_ms = await voice
    except Exception as exc:  # the victim's chat broke: that is the result
        voice_ms, result["victim_voice_error"] = [float("inf")], repr(exc)[:80]
    stop.set()
    rest_ms = await rest
    return {
        "phase": name,
        "rest_p95_ms": _ms(pct(rest_ms, 0.95)),
        "rest_n": len(rest_ms),
        "voice_p95_ms": _ms(pct(voice_ms, 0.95)),
        "rss_mb": round(rss_mb(server)),
        **result,
    }


def _ms(value: float) -> float:
    return round(value) if value != float("inf") else value


async def sigterm_during_flood(server: ServerProcess) -> float:
    key = server.new_account_key("attacker-sigterm")
    flood = asyncio.create_task(pause_flood(target_of(server), key, 30))
    await asyncio.sleep(3)
    assert server.proc is not None
    started = time.perf_counter()
    server.proc.terminate()
    await asyncio.to_thread(server.proc.wait, 120)
    stopped = time.perf_counter() - started
    server.proc = None
    flood.cancel()
    with contextlib.suppress(BaseException):
        await flood
    return stopped


async def run(server: ServerProcess, seconds: float, phases: list[str]) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    config = await client.empathic_voice.configs.create_config(
        name=f"victim-{time.time_ns()}", evi_version="3", turn_detection={"end_of_turn_silence_ms": 500}
    )
    assert config is not None and config.id is not None
    clips = [np.concatenate([speak(s), np.zeros(int(RATE * 0.1), dtype=np.float32)]) for s in SENTENCES]
    await voice_chat(server, config.id, 1, clips)  # warm-up
    rows = []
    for name in phases:
        rows.append(await phase(server, name, ATTACKS[name], seconds, config.id, clips))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print(
        "\n| phase | victim REST p95 ms (Δ) | victim voice-to-voice p95 ms (Δ) | server RSS MB | what the attack got |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        extra = {k: v for k, v in row.items() if k not in ("phase", "rest_p95_ms", "rest_n", "voice_p95_ms", "rss_mb")}
        rest_delta = (row["rest_p95_ms"] / base["rest_p95_ms"] - 1) * 100
        voice_delta = (row["voice_p95_ms"] / base["voice_p95_ms"] - 1) * 100
        got = ", ".join(f"{k} {v}" for k, v in extra.items()) or "-"
        print(
            f"| {row['phase']} | {row['rest_p95_ms']} ({rest_delta:+.0f}%) "
            f"| {row['voice_p95_ms']} ({voice_delta:+.0f}%) | {row['rss_mb']} | {got} |"
        )
    print(f"\nSIGTERM during a pause/resume flood: the server exited after {await sigterm_during_flood(server):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--phases", default=",".join(ATTACKS))
    args = parser.parse_args()
    phases = ["baseline", *[p for p in args.phases.split(",") if p and p != "baseline"]]
    rest_rates = {  # the defaults (the test server turns them off)
        f"OPENEVI_{name.upper()}": str(Settings.model_fields[name].default)
        for name in ("rest_reads_per_s", "rest_writes_per_s", "rest_write_bytes_per_s")
    }
    with bench_server("scripted", "Sure. Here is a short answer for you.", extra_env=rest_rates) as server:
        print(f"load average {os.getloadavg()[0]:.1f}")
        asyncio.run(run(server, args.seconds, phases))


if __name__ == "__main__":
    main()
