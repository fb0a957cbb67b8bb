"""A Starlette app served by uvicorn in a daemon thread on a free port of 127.0.0.1 (test backends)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Self

import uvicorn
from starlette.applications import Starlette


class AsgiStub:
    """Start/stop and the event loop of a stub server; a subclass gives `_app()` and its `name`."""

    name = "stub server"

    def __init__(self) -> None:
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    def _app(self) -> Starlette:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving on a free port of 127.0.0.1; returns self once it accepts connections."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=self.name.replace(" ", "-"), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server; replies hanging on `_hang()` are released first."""
        if self._server is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            assert self._server is not None
            await self._server.serve()

        asyncio.run(main())

    async def _hang(self) -> None:
        """Wait until the server stops (a reply that never comes)."""
        assert self._stopping is not None
        await self._stopping.wait()
