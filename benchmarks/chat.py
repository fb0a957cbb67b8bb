"""Text-chat latency and concurrency through the official SDK.

Measures, over real WebSockets on 127.0.0.1:
- time from sending `user_input` to the first `assistant_message` and to the first `audio_output`;
- how many concurrent text chats one server process sustains (all turns answered, p95 latency).

    .venv/bin/python -m benchmarks.chat --turns 20 --concurrency 1,4,8,16
    .venv/bin/python -m benchmarks.chat --model local --turns 10   # the offline default model

Traffic goes only to servers this script starts on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hume import AsyncHumeClient
from hume.empathic_voice import UserInput

from benchmarks.stack import bench_server
from tests.server import ServerProcess

REPLY = "Sure. The museum opens at nine in the morning, and tickets cost twelve euros. Enjoy your visit!"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_turn(socket: object, text: str) -> tuple[float, float]:
    """(ms to first assistant_message, ms to first audio_output) for one user_input."""
    start = time.perf_counter()
    first_text = first_audio = None
    await socket.send_publish(UserInput(text=text))  # type: ignore[attr-defined]
    async with asyncio.timeout(120):
        while True:
            message = await socket.recv()  # type: ignore[attr-defined]
            now = (time.perf_counter() - start) * 1000
            if message.type == "assistant_message" and first_text is None:
                first_text = now
            elif message.type == "audio_output" and first_audio is None:
                first_audio = now
            elif message.type == "assistant_end":
                break
            elif message.type == "error":
                raise RuntimeError(message.message)
    assert first_text is not None and first_audio is not None
    return first_text, first_audio


async def chat_session(client: AsyncHumeClient, turns: int) -> list[tuple[float, float]]:
    results = []
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()  # chat_metadata
        for i in range(turns):
            results.append(await one_turn(socket, f"When does the museum open? ({i})"))
    return results


async def run(server: ServerProcess, turns: int, levels: list[int]) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    await chat_session(client, 1)  # warm-up
    print(f"\nsingle chat, {turns} turns")
    single = await chat_session(client, turns)
    texts, audios = [t for t, _ in single], [a for _, a in single]
    print(f"  first assistant_message ms: p50 {statistics.median(texts):.0f}  p95 {pct(texts, 0.95):.0f}")
    print(f"  first audio_output ms:      p50 {statistics.median(audios):.0f}  p95 {pct(audios, 0.95):.0f}")
    print("\nconcurrent chats (3 turns each)")
    print("  chats  turns/s  first-audio p50  p95  max")
    for level in levels:
        started = time.perf_counter()
        results = await asyncio.gather(*(chat_session(client, 3) for _ in range(level)))
        elapsed = time.perf_counter() - started
        audio_ms = [a for chat in results for _, a in chat]
        print(
            f"  {level:5d}  {len(audio_ms) / elapsed:7.1f}  {statistics.median(audio_ms):15.0f}"
            f"  {pct(audio_ms, 0.95):4.0f}  {max(audio_ms):4.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--model", choices=["scripted", "local"], default="scripted")
    parser.add_argument("--workers", type=int, default=1, help="openevi serve --workers N (one machine)")
    args = parser.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x]
    with bench_server(args.model, REPLY, workers=args.workers) as server:
        print(f"model: {args.model}; scripted reply streams 2 words every 20 ms")
        asyncio.run(run(server, args.turns, levels))


if __name__ == "__main__":
    main()
