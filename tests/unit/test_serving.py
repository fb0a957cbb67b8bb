"""`openevi serve` hands uvicorn the hardened protocols and a bound on how long SIGTERM waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openevi import cli
from openevi.serving import ClosingWebSocketProtocol


def test_serve_bounds_the_graceful_shutdown_and_uses_the_closing_websocket_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn waits for every connection's task without a bound by default: a socket still streaming
    audio kept a SIGTERM'd server up for 75-87 s (benchmarks/hostile.py)."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setenv("OPENEVI_SHUTDOWN_TIMEOUT_S", "7")
    assert cli.main(["serve", "--data-dir", str(tmp_path)]) == 0
    assert seen["timeout_graceful_shutdown"] == 7
    assert seen["ws"] is ClosingWebSocketProtocol
