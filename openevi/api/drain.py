"""Leaving service without hanging up on anyone: what SIGTERM starts (docs/deploy.md, "Deploys").

The first SIGTERM does not stop the server. It marks the instance as draining: `/readyz` answers 503,
new chat sockets and phone calls get a retryable refusal (HTTP 503) so a load balancer sends them
to another instance, and live chats go on until they end or `OPENEVI_DRAIN_TIMEOUT_S` passes. Then
the chats still live are ended cleanly (stored as ended, `chat_ended` webhook queued, sockets closed
with 1012 "service restart") and the signal goes on to the server (uvicorn), which stops as usual. A
second SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from openevi.chat.runtime import ChatRuntime
from openevi.schemas.chat_types import ChatStatus

log = logging.getLogger("openevi.drain")

RESTART_CLOSE_CODE = 1012  # RFC 6455 "service restart": the client may reconnect at once
RESTART_REASON = "server restarting"

SignalHandler = Callable[[int, FrameType | None], Any]


class Drain:
    """This process's drain: its state, and the SIGTERM handler that starts it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.draining = False
        self._task: asyncio.Task[None] | None = None

    def install(self, runtime: ChatRuntime) -> None:
        """Take SIGTERM ahead of the server's own handler (which runs once the chats are over)."""
        if threading.current_thread() is not threading.main_thread():
            return  # an embedded app (tests' TestClient): no signals to take
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                _pass_on(previous, sig, frame)  # asked twice: stop now
                return
            self.draining = True
            loop.call_soon_threadsafe(self._start, runtime, lambda: _pass_on(previous, sig, frame))

        signal.signal(signal.SIGTERM, on_sigterm)

    def _start(self, runtime: ChatRuntime, then: Callable[[], None]) -> None:
        async def run() -> None:
            try:
                await self.end_chats(runtime)
            except Exception:
                log.exception("draining failed; stopping anyway")
            finally:
                then()

        self._task = asyncio.create_task(run(), name="drain")

    async def end_chats(self, runtime: ChatRuntime) -> None:
        """Wait for the live chats to end (at most the drain timeout), then end the rest cleanly."""
        self.draining = True
        log.warning("draining: %d live chats, up to %gs", len(runtime.sessions), self.timeout_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.sessions.until_empty(), self.timeout_s)
        live = list(runtime.sessions.values())
        if live:
            log.warning("drain timeout: ending %d live chats", len(live))
        for session in live:
            session.close_code, session.close_reason = RESTART_CLOSE_CODE, RESTART_REASON
        await asyncio.gather(*(s.close(ChatStatus.USER_ENDED, reason=RESTART_REASON) for s in live))


def _pass_on(handler: Any, sig: int, frame: FrameType | None) -> None:
    """Hand the signal to the handler that was there before ours."""
    if callable(handler):
        handler(sig, frame)
        return
    signal.signal(sig, handler)  # the default action (or ignore), as if we had never been here
    signal.raise_signal(sig)
