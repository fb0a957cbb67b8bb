"""Connections closed with no response under many keep-alive REST clients (issue 19, Low).

One `openevi serve` on 127.0.0.1 (speech input off; REST rate limits off, so only connections
matter). `--clients` httpx clients (keep-alive, httpx's default 5 s expiry of idle connections)
each send `GET /v0/evi/configs`, then sleep a random 4.9-5.1 s (the idle time at which a client's
expiry and the server's keep-alive timeout meet), for `--seconds`. Counts the requests that failed
because the server closed the connection before answering.

    .venv/bin/python -m benchmarks.keepalive --clients 300 --seconds 12
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import httpx

from tests.server import ServerProcess


async def load(server: ServerProcess, clients: int, seconds: float) -> dict[str, int]:
    counts = {"ok": 0, "closed_without_response": 0, "other_errors": 0}
    deadline = time.monotonic() + seconds
    rng = random.Random(19)

    async def one() -> None:
        headers = {"X-Hume-Api-Key": server.api_key}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as client:
            await asyncio.sleep(rng.uniform(0, 1))  # spread the clients over a second
            while time.monotonic() < deadline:
                try:
                    response = await client.get("/v0/evi/configs")
                    counts["ok" if response.status_code == 200 else "other_errors"] += 1
                except httpx.RemoteProtocolError:  # "Server disconnected without sending a response"
                    counts["closed_without_response"] += 1
                except httpx.HTTPError:
                    counts["other_errors"] += 1
                await asyncio.sleep(rng.uniform(4.9, 5.1))

    await asyncio.gather(*(one() for _ in range(clients)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--server-keep-alive", type=float, default=None, help="OPENEVI_HTTP_KEEP_ALIVE_S")
    args = parser.parse_args()
    env = {
        "OPENEVI_ASR_PROVIDER": "none",
        "OPENEVI_VAD_PROVIDER": "none",
        "OPENEVI_PROSODY_PROVIDER": "none",
        "OPENEVI_REST_READS_PER_S": "0",
    }
    if args.server_keep_alive is not None:
        env["OPENEVI_HTTP_KEEP_ALIVE_S"] = str(args.server_keep_alive)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(data_dir=Path(tmp), extra_env=env, max_open_files=4096)
        server.start()
        try:
            counts = asyncio.run(load(server, args.clients, args.seconds))
        finally:
            server.stop()
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, **counts}))


if __name__ == "__main__":
    main()
