"""A real openevi server process on 127.0.0.1 for integration tests.

The database is SQLite in a temporary data dir, or PostgreSQL when `OPENEVI_TEST_POSTGRES_URL`
names a server (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`): each server then
gets a fresh database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

POSTGRES_URL_ENV = "OPENEVI_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_postgres_database(admin_url: str) -> str:
    """Create an empty database on the test PostgreSQL server; returns its async URL."""
    import asyncpg  # only needed when testing on PostgreSQL

    name = f"openevi_test_{uuid.uuid4().hex[:12]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def database_url_for_tests() -> str | None:
    admin = os.environ.get(POSTGRES_URL_ENV)
    return fresh_postgres_database(admin) if admin else None


@dataclass
class ServerProcess:
    """One `openevi serve` subprocess; restartable on the same data dir and database."""

    data_dir: Path
    api_key: str = field(default_factory=lambda: "test_" + secrets.token_urlsafe(16))
    secret_key: str = field(default_factory=lambda: "testsecret_" + secrets.token_urlsafe(16))
    database_url: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    # Limit of open files for the server process (None: inherited), to test running out of them.
    max_open_files: int | None = None
    # More `openevi serve` flags (e.g. ["--workers", "2"] for the benchmarks).
    serve_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENEVI_")}
        env.update(
            OPENEVI_API_KEY=self.api_key,
            OPENEVI_SECRET_KEY=self.secret_key,
            OPENEVI_DATA_DIR=str(self.data_dir),
            OPENEVI_LOG_LEVEL="warning",
            # The suites open many chats per account, at once and in quick succession; the quota
            # tests (tests/integration/test_limits.py) set their own limits.
            OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS="10000",
            OPENEVI_ACCOUNT_MAX_CHATS_PER_MINUTE="0",
            # Nor REST request rates (tests/integration/test_rest_rate_limit.py and
            # benchmarks/hostile.py set them): suites send many requests with one key.
            OPENEVI_REST_READS_PER_S="0",
            OPENEVI_REST_WRITES_PER_S="0",
            OPENEVI_REST_WRITE_BYTES_PER_S="0",
            # Test stubs (language models, webhook receivers) listen on loopback, which tenant URLs may
            # not reach by default; tests of the refusal override this in extra_env.
            OPENEVI_OUTBOUND_ALLOW="127.0.0.1/32,::1/128",
            # stop() sends SIGTERM, which drains: chats a test left open end well within stop()'s wait.
            OPENEVI_DRAIN_TIMEOUT_S="5",
        )
        if self.database_url:
            env["OPENEVI_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "openevi.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, *self.serve_args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_open_files if self.max_open_files is not None else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openevi exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"openevi did not start in {timeout}s:\n{self.log_path.read_text()}")

    def _limit_open_files(self) -> None:
        import resource

        assert self.max_open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `openevi …` against this server's data dir and database."""
        return subprocess.run(
            [sys.executable, "-m", "openevi.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def new_account_key(self, name: str = "other") -> str:
        """A key of a brand-new account (made with `openevi keys create`)."""
        result = self.cli("keys", "create", "--name", name)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]
