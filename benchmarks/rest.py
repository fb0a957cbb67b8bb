"""REST throughput and latency of one openevi process (one uvicorn worker) on 127.0.0.1.

For each database (SQLite always, PostgreSQL when `--postgres-url` names a server) it starts a fresh
server, seeds prompts, tools and configs, then for each scenario sends `--requests` requests from an
async httpx client over `--concurrency` keep-alive connections and reports requests/second and
p50/p99 latency. Every request goes to the local server only; each scenario stops after
`--max-seconds` even if not all requests were sent.

Run: .venv/bin/python -m benchmarks.rest [--requests 2000] [--concurrency 16]
         [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:55432/postgres] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.server import ServerProcess, fresh_postgres_database

SEED_CONFIGS = 50
WARMUP_REQUESTS = 100


@dataclass(frozen=True)
class Result:
    database: str
    scenario: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Seeded:
    config_ids: list[str]
    prompt_ids: list[str]


# A request: (method, url, json body or None), made fresh for the i-th request of a scenario.
RequestFactory = Callable[[int], tuple[str, str, dict[str, Any] | None]]


async def seed(client: httpx.AsyncClient) -> Seeded:
    """SEED_CONFIGS configs, each referring to a prompt and a tool of its own (as real configs do)."""
    parameters = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}})
    prompts, configs = [], []
    for i in range(SEED_CONFIGS):
        prompt = await client.post("/v0/evi/prompts", json={"name": f"bench-prompt-{i}", "text": "Be brief. " * 20})
        tool = await client.post(
            "/v0/evi/tools", json={"name": f"bench_tool_{i}", "parameters": parameters, "description": "weather"}
        )
        prompt.raise_for_status()
        tool.raise_for_status()
        config = await client.post(
            "/v0/evi/configs",
            json={
                "name": f"bench-config-{i}",
                "evi_version": "3",
                "prompt": {"id": prompt.json()["id"], "version": 0},
                "tools": [{"id": tool.json()["id"], "version": 0}],
            },
        )
        config.raise_for_status()
        prompts.append(prompt.json()["id"])
        configs.append(config.json()["id"])
    return Seeded(config_ids=configs, prompt_ids=prompts)


def scenarios(seeded: Seeded) -> dict[str, RequestFactory]:
    configs, prompts = seeded.config_ids, seeded.prompt_ids
    return {
        "get-config-version": lambda i: ("GET", f"/v0/evi/configs/{configs[i % len(configs)]}/version/0", None),
        "list-configs": lambda i: ("GET", "/v0/evi/configs?page_size=10", None),
        "create-prompt-version": lambda i: (
            "POST",
            f"/v0/evi/prompts/{prompts[i % len(prompts)]}",
            {"text": f"Be brief, take {i}.", "version_description": "bench"},
        ),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


async def run_scenario(
    client: httpx.AsyncClient,
    make: RequestFactory,
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> tuple[list[float], int, float]:
    """Latencies (s) of the successful requests, error count, wall seconds."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + max_seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            i = next(counter)
            if i >= requests:
                return
            method, url, body = make(i)
            sent = time.perf_counter()
            try:
                response = await client.request(method, url, json=body)
                ok = response.status_code < 300
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


async def bench_server(server: ServerProcess, database: str, args: argparse.Namespace) -> list[Result]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"X-Hume-Api-Key": server.api_key}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=30.0, trust_env=False
    ) as client:
        seeded = await seed(client)
        results = []
        for name, make in scenarios(seeded).items():
            if args.only and name not in args.only:
                continue
            await run_scenario(client, make, requests=WARMUP_REQUESTS, concurrency=args.concurrency, max_seconds=30)
            latencies, errors, seconds = await run_scenario(
                client, make, requests=args.requests, concurrency=args.concurrency, max_seconds=args.max_seconds
            )
            latencies.sort()
            result = Result(
                database=database,
                scenario=name,
                concurrency=args.concurrency,
                requests=len(latencies) + errors,
                errors=errors,
                seconds=round(seconds, 2),
                rps=round(len(latencies) / seconds, 1),
                p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
                p99_ms=round(percentile(latencies, 0.99) * 1000, 1),
            )
            print(_row(result), flush=True)
            results.append(result)
        return results


def _row(r: Result) -> str:
    return (
        f"| {r.database} | {r.scenario} | {r.concurrency} | {r.requests} | {r.errors} "
        f"| {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit per scenario")
    parser.add_argument("--postgres-url", help="also run on this PostgreSQL server (a fresh database is made)")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.requests < 1 or not 1 <= args.concurrency <= 256:
        parser.error("--requests must be >= 1 and --concurrency 1..256")

    databases: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres_url:
        databases.append(("postgresql", fresh_postgres_database(args.postgres_url)))

    print("| database | scenario | connections | requests | errors | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    results: list[Result] = []
    for database, url in databases:
        with tempfile.TemporaryDirectory(prefix="openevi-bench-") as tmp:
            server = ServerProcess(data_dir=Path(tmp), database_url=url)
            server.start()
            try:
                results += asyncio.run(bench_server(server, database, args))
            finally:
                server.stop()
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
