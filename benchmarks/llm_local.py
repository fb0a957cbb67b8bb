"""Local language model latency: load time, time to first token, tokens/s, and the replies themselves.

Run: .venv/bin/python -m benchmarks.llm_local [--threads N] [--model PATH]

Each prompt is a new turn of one conversation (so later turns reuse the cached history prefix, as in
a live chat); one extra cold turn measures a conversation the engine has not seen.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from openevi.llm.base import GenerationRequest, Message, TextDelta
from openevi.llm.local import LocalLLM

SYSTEM = "You are Eve, a warm and helpful assistant for a home-services company."
PROMPTS = (
    "Hi! Who am I talking to?",
    "What's a good way to keep my kitchen drain from clogging?",
    "How often should I replace the filter in my furnace?",
    "Thanks, that's helpful. Can you say that again more briefly?",
)
COLD = "Give me one tip for sleeping better."


async def _turn(model: LocalLLM, messages: list[Message]) -> tuple[str, float, int, float]:
    """(reply, seconds to first token, tokens, decode tokens/s)."""
    start = time.perf_counter()
    first = 0.0
    pieces: list[str] = []
    async for event in model.stream(GenerationRequest(messages=list(messages))):
        if isinstance(event, TextDelta):
            if not pieces:
                first = time.perf_counter() - start
            pieces.append(event.text)
    total = time.perf_counter() - start
    rate = (len(pieces) - 1) / (total - first) if len(pieces) > 1 and total > first else 0.0
    return "".join(pieces), first, len(pieces), rate


def _stats(first: float, tokens: int, rate: float) -> str:
    return f"first token {first * 1000:.0f} ms, {tokens} tokens, {rate:.1f} tok/s"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="a GGUF path (default: the shipped model)")
    args = parser.parse_args()

    model = LocalLLM(model_path=args.model, n_threads=args.threads, temperature=0.0)
    start = time.perf_counter()
    engine = await asyncio.to_thread(model.load)
    print(f"load: {time.perf_counter() - start:.2f} s (engine {engine.load_seconds:.2f} s)")

    messages = [Message("system", SYSTEM)]
    firsts: list[float] = []
    rates: list[float] = []
    for prompt in PROMPTS:
        messages.append(Message("user", prompt))
        reply, first, tokens, rate = await _turn(model, messages)
        messages.append(Message("assistant", reply))
        firsts.append(first)
        rates.append(rate)
        print(f"\nuser: {prompt}\neve:  {reply}\n      {_stats(first, tokens, rate)}")
    reply, first, tokens, rate = await _turn(model, [Message("system", SYSTEM), Message("user", COLD)])
    print(f"\n(cold) user: {COLD}\neve:  {reply}\n      {_stats(first, tokens, rate)}")
    print(
        f"\nmedian over the conversation: first token {statistics.median(firsts) * 1000:.0f} ms, "
        f"{statistics.median(rates):.1f} tok/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
