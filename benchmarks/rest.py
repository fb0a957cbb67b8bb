"""REST throughput and latency of one openevi process (one uvicorn worker) on 127.0.0.1.

For each database (SQLite always, PostgreSQL when `--postgres-url` names a server) it starts a fresh
server, seeds prompts, tools and configs, then for each scenario sends `--requests` requests from an
async httpx client over `--concurrency` keep-alive connections and reports requests/second and
p50/p99 latency. Every request goes to the local server only; each scenario stops after
`--max-seconds` even if not all requests were sent.

Run: .venv/bin/python -m benchmarks.rest [--requests 2000] [--concurrency 16]
         [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:55432/postgres] [--json results.json]

`--floor` instead compares openevi's reads with the floor of its own stack: a minimal FastAPI +
SQLAlchemy-async app (`benchmarks/rest_floor.py`, same uvicorn/uvloop/httptools, same database file)
that answers each read with one indexed SELECT of JSON rows. Both are driven by `wrk` (Debian's; the
httpx client when wrk is missing) for `--seconds` per scenario, and it prints openevi req/s, floor
req/s and their ratio:

     .venv/bin/python -m benchmarks.rest --floor [--seconds 10] [--connections 4] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.server import ServerProcess, free_port, fresh_postgres_database

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


# --- openevi against the floor of its own stack (--floor) -----------------------------------------

READS = ("get-config-version", "list-configs", "get-prompt-version")
# No speech or local language model: their start-up warm-up would load models while we measure.
REST_ONLY_ENV = {
    "OPENEVI_LLM_PROVIDER": "openai",
    "OPENEVI_ASR_PROVIDER": "none",
    "OPENEVI_VAD_PROVIDER": "none",
    "OPENEVI_PROSODY_PROVIDER": "none",
}


def read_paths(seeded: Seeded, scenario: str) -> list[str]:
    if scenario == "get-config-version":
        return [f"/v0/evi/configs/{c}/version/0" for c in seeded.config_ids]
    if scenario == "get-prompt-version":
        return [f"/v0/evi/prompts/{p}/version/0" for p in seeded.prompt_ids]
    return ["/v0/evi/configs?page_size=10"]


_WRK_SCRIPT = """
local paths = {%s}
local i = 0
wrk.headers["X-Hume-Api-Key"] = "%s"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _wrk_ms(text: str, label: str) -> float:
    found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not found:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def run_wrk(base_urls: list[str], paths: list[str], api_key: str, args: argparse.Namespace) -> Load:
    """wrk against each base URL at once (one per server process); req/s summed."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % (", ".join(json.dumps(p) for p in paths), api_key))
    try:
        procs = [
            subprocess.Popen(
                ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", script.name, url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for url in base_urls
        ]
        outputs = [p.communicate()[0] for p in procs]
    finally:
        os.unlink(script.name)
    rps = errors = 0.0
    for out in outputs:
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps += float(found.group(1)) if found else 0.0
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors += int(bad.group(1)) if bad else 0
        errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Load(
        rps=round(rps, 1), p50_ms=_wrk_ms(outputs[0], "50%"), p99_ms=_wrk_ms(outputs[0], "99%"), errors=int(errors)
    )


def run_httpx(base_urls: list[str], paths: list[str], api_key: str, args: argparse.Namespace) -> Load:
    """The same load from the async httpx client, for machines without wrk (one server only)."""

    async def go() -> Load:
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
        async with httpx.AsyncClient(
            base_url=base_urls[0], headers={"X-Hume-Api-Key": api_key}, limits=limits, trust_env=False
        ) as client:
            latencies, errors, seconds = await run_scenario(
                client,
                lambda i: ("GET", paths[i % len(paths)], None),
                requests=10**9,
                concurrency=args.connections,
                max_seconds=args.seconds,
            )
        latencies.sort()
        return Load(
            rps=round(len(latencies) / seconds, 1),
            p50_ms=round(percentile(latencies, 0.5) * 1000, 2),
            p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
            errors=errors,
        )

    return asyncio.run(go())


def _serve_supports_workers() -> bool:
    helped = subprocess.run(
        [sys.executable, "-m", "openevi.cli", "serve", "--help"], capture_output=True, text=True, check=False
    )
    return "--workers" in helped.stdout


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()}")


class Processes:
    """Server processes started for one measurement, always stopped."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def start(self, command: list[str], env: dict[str, str], log: Path, port: int) -> None:
        with log.open("ab") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        self.urls.append(url)
        _wait_healthy(url, proc, log)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_openevi(server: ServerProcess, workers: int, builtin_workers: bool) -> Processes:
    """`openevi serve --workers N` when the CLI has it; otherwise N separate processes (one port each)."""
    started = Processes()
    counts = [workers] if builtin_workers else [1] * workers
    for count in counts:
        port = free_port()
        command = [sys.executable, "-m", "openevi.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if builtin_workers and count > 1:
            command += ["--workers", str(count)]
        started.start(command, server.env(), server.data_dir / "server.log", port)
    return started


def start_floor(
    database_url: str, data_dir: Path, workers: int, *, pre_ping: bool, autocommit: bool = False
) -> Processes:
    started = Processes()
    port = free_port()
    env = {
        **os.environ,
        "FLOOR_DATABASE_URL": database_url,
        "FLOOR_PRE_PING": "1" if pre_ping else "",
        "FLOOR_AUTOCOMMIT": "1" if autocommit else "",
    }
    command = [
        sys.executable, "-m", "uvicorn", "benchmarks.rest_floor:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    started.start(command, env, data_dir / "floor.log", port)
    return started


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_floor(args: argparse.Namespace) -> int:
    """openevi req/s, floor req/s and their ratio for each read, on SQLite (and PostgreSQL if given)."""
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    builtin_workers = _serve_supports_workers()
    if args.workers > 1 and not use_wrk and not builtin_workers:
        print("several processes without --workers need wrk", file=sys.stderr)
        return 2
    how = "`openevi serve --workers`" if builtin_workers else "separate `openevi serve` processes"
    print(
        f"client: {'wrk' if use_wrk else 'httpx'}, {args.connections} connections per server, "
        f"{args.rounds} alternating rounds of {args.seconds}s each; "
        f"openevi workers: {args.workers} ({how}); load average at start: {load_average()}"
    )
    print(
        "| database | scenario | workers | openevi req/s | floor req/s | ratio | ratio per round "
        "| openevi p50/p99 ms | floor p50/p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    databases: list[tuple[str, str | None]] = [("sqlite", None)]
    if args.postgres_url:
        databases.append(("postgresql", fresh_postgres_database(args.postgres_url)))
    failed = False
    for database, url in databases:
        with tempfile.TemporaryDirectory(prefix="openevi-bench-") as tmp:
            server = ServerProcess(data_dir=Path(tmp), database_url=url, extra_env=REST_ONLY_ENV)
            server.start()
            try:
                seeded = asyncio.run(_seed_only(server))
            finally:
                server.stop()
            db_url = url or f"sqlite+aiosqlite:///{Path(tmp) / 'openevi.db'}"
            openevi = start_openevi(server, args.workers, builtin_workers)
            floor = start_floor(
                db_url, Path(tmp), args.workers, pre_ping=args.floor_pre_ping, autocommit=args.floor_autocommit
            )
            try:
                for scenario in args.only or READS:
                    failed |= _compare(database, scenario, read_paths(seeded, scenario), openevi, floor, server, args)
            finally:
                openevi.stop()
                floor.stop()
    print(f"load average at end: {load_average()}")
    return 1 if failed else 0


def _compare(
    database: str,
    scenario: str,
    paths: list[str],
    openevi: Processes,
    floor: Processes,
    server: ServerProcess,
    args: argparse.Namespace,
) -> bool:
    """Alternate openevi and floor runs (`--rounds` each), so that load from other work on the
    machine hits both alike; print the mean req/s of each and the ratio of the means."""
    drive = run_httpx if shutil.which("wrk") is None or args.httpx else run_wrk
    for target in (openevi, floor):
        drive(target.urls, paths, server.api_key, _warmup(args))
    ours: list[Load] = []
    theirs: list[Load] = []
    for _ in range(args.rounds):
        ours.append(drive(openevi.urls, paths, server.api_key, args))
        theirs.append(drive(floor.urls, paths, server.api_key, args))
    our_rps = sum(r.rps for r in ours) / len(ours)
    their_rps = sum(r.rps for r in theirs) / len(theirs)
    ratios = [o.rps / t.rps for o, t in zip(ours, theirs, strict=True) if t.rps]
    errors = sum(r.errors for r in ours), sum(r.errors for r in theirs)
    spread = f"{min(ratios):.2f} to {max(ratios):.2f}" if ratios else "-"
    o, t = ours[-1], theirs[-1]
    print(
        f"| {database} | {scenario} | {args.workers} | {our_rps:.0f} | {their_rps:.0f} "
        f"| **{our_rps / their_rps if their_rps else float('nan'):.2f}** | {spread} "
        f"| {o.p50_ms:.2f} / {o.p99_ms:.2f} | {t.p50_ms:.2f} / {t.p99_ms:.2f} |"
        + (f" errors: {errors[0]} / {errors[1]}" if any(errors) else ""),
        flush=True,
    )
    return any(errors)


def _warmup(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "seconds": 2})


async def _seed_only(server: ServerProcess) -> Seeded:
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"X-Hume-Api-Key": server.api_key}, timeout=30.0, trust_env=False
    ) as client:
        return await seed(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit per scenario")
    parser.add_argument("--postgres-url", help="also run on this PostgreSQL server (a fresh database is made)")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--floor", action="store_true", help="compare reads with the minimal FastAPI app")
    parser.add_argument("--seconds", type=int, default=10, help="--floor: seconds per run")
    parser.add_argument("--connections", type=int, default=4, help="--floor: connections per server")
    parser.add_argument("--workers", type=int, default=1, help="--floor: server processes")
    parser.add_argument("--rounds", type=int, default=3, help="--floor: alternating runs of each server")
    parser.add_argument("--httpx", action="store_true", help="--floor: use the httpx client even if wrk exists")
    parser.add_argument(
        "--floor-pre-ping", action="store_true", help="--floor: the floor app pings each pooled connection too"
    )
    parser.add_argument(
        "--floor-autocommit",
        action="store_true",
        help="--floor: the floor app reads without BEGIN/ROLLBACK too (as openevi's reads on PostgreSQL)",
    )
    args = parser.parse_args(argv)
    if args.floor:
        return bench_floor(args)
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
