"""Webhook fairness: how long a healthy tenant's delivery waits while another tenant's receiver hangs,
and when a failing receiver's retries actually arrive.

Tenant A has `--stuck` deliveries to a receiver on 127.0.0.1 that accepts and never answers (each
attempt ends at `--timeout-s`). Then tenant B's `chat_started` is enqueued to a healthy receiver, and
tenant C's to a receiver that answers 500 to every attempt. Reported: B's delay from enqueue to
arrival, and the arrival times of C's attempts next to the documented schedule. The dispatcher runs
in this process on a SQLite database, with the outbound allow-list set to loopback.

Run: .venv/bin/python -m benchmarks.webhook_fairness [--stuck 160] [--timeout-s 10] [--attempts 6]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from openevi.settings import Settings
from openevi.store import accounts
from openevi.store.db import create_engine, migrate, new_id, session_factory, transaction
from openevi.webhooks.dispatcher import WebhookDispatcher
from openevi.webhooks.outbox import chat_started_payload, enqueue
from tests.server import free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler


def _payload() -> dict[str, object]:
    return chat_started_payload(
        chat_group_id=new_id(), chat_id=new_id(), config_id=None, start_time_ms=1, chat_start_type="new_chat_group"
    )


async def run(stuck: int, timeout_s: float, attempts: int) -> None:
    release = threading.Event()
    arrivals: dict[str, list[float]] = {"/stuck": [], "/healthy": [], "/failing": []}

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrivals[self.path].append(time.monotonic())
            if self.path == "/stuck":
                release.wait(timeout_s * 3)
            self.send_response(500 if self.path == "/failing" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    port = free_port()
    server = http_stub.serve(port, Handler)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            outbound_allow="127.0.0.1/32",
            webhook_timeout_s=timeout_s,
            webhook_max_attempts=attempts,
            webhook_backoff_base_s=1.0,
        )
        engine = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await migrate(engine)
        factory = session_factory(engine)

        async def add(name: str, path: str, count: int) -> None:
            async with transaction(factory) as s:
                account = await accounts.create_account(s, name=name)
                for _ in range(count):
                    payload = _payload()
                    hooks = [{"url": f"http://127.0.0.1:{port}{path}", "events": ["chat_started"]}]
                    await enqueue(
                        s,
                        account_id=account,
                        chat_id=str(payload["chat_id"]),
                        webhooks=hooks,
                        event_name="chat_started",
                        payload=payload,
                    )

        dispatcher = WebhookDispatcher(factory, settings)
        await add("tenant-a", "/stuck", stuck)
        dispatcher.start()
        dispatcher.notify()
        while not arrivals["/stuck"]:  # noqa: ASYNC110 (the receiver is a thread: poll what it recorded)
            await asyncio.sleep(0.01)
        enqueued = time.monotonic()
        await add("tenant-b", "/healthy", 1)
        await add("tenant-c", "/failing", 1)
        dispatcher.notify()
        schedule = [0.0]
        for n in range(1, attempts):
            schedule.append(schedule[-1] + 2 ** (n - 1))
        deadline = enqueued + schedule[-1] * 1.3 + timeout_s + 30

        def done() -> bool:
            return bool(arrivals["/healthy"]) and len(arrivals["/failing"]) >= attempts

        while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 (see above)
            await asyncio.sleep(0.01)
        release.set()
        await dispatcher.stop()
        await engine.dispose()
    http_stub.stop(server)

    healthy = arrivals["/healthy"]
    print(f"stuck deliveries of tenant A: {stuck}, attempt timeout {timeout_s:g} s")
    print(f"tenant B delay (enqueue -> arrival): {(healthy[0] - enqueued) * 1000:.0f} ms" if healthy else "B: never")
    failing = arrivals["/failing"]
    got = [f"{t - failing[0]:.2f}" for t in failing]
    print(f"tenant C attempts at (s after the first): {', '.join(got)}")
    print(f"documented schedule (±20% jitter each gap): {', '.join(f'{t:g}' for t in schedule)}")
    print(f"tenant A attempts started while B and C were served: {len(arrivals['/stuck'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stuck", type=int, default=160)
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--attempts", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(run(args.stuck, args.timeout_s, args.attempts))


if __name__ == "__main__":
    main()
