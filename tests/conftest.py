"""Shared fixtures: one real server per test session, reached over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import ServerProcess, database_url_for_tests
from tests.support.seaweedfs import seaweedfs as seaweedfs  # the S3 server fixture (session-wide)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running openevi with embedded defaults (SQLite, or PostgreSQL when configured)."""
    proc = ServerProcess(
        data_dir=Path(tmp_path_factory.mktemp("openevi")),
        database_url=database_url_for_tests(),
        extra_env={"OPENEVI_ALLOW_HTTP_WEBHOOKS": "true"},
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of this test's own (for restarts and destructive checks)."""
    proc = ServerProcess(data_dir=tmp_path / "openevi", database_url=database_url_for_tests())
    proc.start()
    yield proc
    proc.stop()
