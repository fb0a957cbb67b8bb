"""How much one tenant can still take: database growth from one chat socket, idle chats per account.

Runs against one `openevi serve` with the default limits (the scripted model; no speech input):

- `disk-fill`: one socket sends `session_settings` with a new system prompt as fast as the server
  answers, for `--seconds`, once with prompts just under the limit and once with 8 MB prompts (the
  frame limit); the database files are measured before and after.
- `idle-chats`: one account opens `--chats` chat sockets and keeps them open; how many are admitted.

    .venv/bin/python -m benchmarks.limits --seconds 7 --chats 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import SessionSettings

from benchmarks.stack import bench_server
from openevi.settings import Settings
from tests.server import ServerProcess

DEFAULTS = Settings()
# The defaults of openevi/settings.py, undoing the test harness's high quotas.
DEFAULT_QUOTAS = {
    "OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS": str(DEFAULTS.account_max_concurrent_chats),
    "OPENEVI_ACCOUNT_MAX_CHATS_PER_MINUTE": str(DEFAULTS.account_max_chats_per_minute),
    "OPENEVI_ASR_PROVIDER": "none",
    "OPENEVI_VAD_PROVIDER": "none",
    "OPENEVI_PROSODY_PROVIDER": "none",
}


def database_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("openevi.db*"))


async def disk_fill(server: ServerProcess, prompt_bytes: int, seconds: float) -> dict[str, Any]:
    client = AsyncHumeClient(api_key=server.new_account_key("fill"), base_url=server.base_url)
    before = database_bytes(server.data_dir)
    accepted = refused = 0
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            i += 1
            await socket.send_publish(SessionSettings(system_prompt=f"{i:08d}" + "p" * (prompt_bytes - 8)))
            while True:
                reply = await socket.recv()
                if reply.type == "session_settings":
                    accepted += 1
                    break
                if reply.type == "error":
                    refused += 1
                    break
    await asyncio.sleep(2)  # the end of the chat is written
    after = database_bytes(server.data_dir)
    growth = round((after - before) / 1e6, 1)
    return {"prompt_bytes": prompt_bytes, "accepted": accepted, "refused": refused, "db_growth_mb": growth}


async def idle_chats(server: ServerProcess, count: int) -> dict[str, int]:
    client = AsyncHumeClient(api_key=server.new_account_key("idle"), base_url=server.base_url)
    admitted = refused = 0
    statuses: dict[int, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            try:
                socket = await stack.enter_async_context(client.empathic_voice.chat.connect())
                await socket.recv()
                admitted += 1
            except ApiError as exc:
                refused += 1
                statuses[exc.status_code or 0] = statuses.get(exc.status_code or 0, 0) + 1
    by_status = {f"status_{k}": v for k, v in statuses.items()}
    return {"attempted": count, "admitted": admitted, "refused": refused, **by_status}


async def main(args: argparse.Namespace) -> None:
    with bench_server("scripted", "OK.", extra_env=DEFAULT_QUOTAS) as server:
        under = DEFAULTS.chat_max_system_prompt_bytes - 1024
        for prompt in (under, 8 * 1024 * 1024 - 4096):
            print("disk-fill", await disk_fill(server, prompt, args.seconds))
        print("idle-chats", await idle_chats(server, args.chats))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--chats", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
