"""A chat's clocks: the maximum duration, the inactivity timeout, and nudges while the user is silent.

Silence is what the floor says it is (`Floor.last_activity`): the user's last turn or speech, or the
end of the assistant's last real answer. Time comes from the chat's clock port (FakeClock in tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from openevi.chat.clock import Clock
from openevi.chat.config import ChatConfig
from openevi.chat.floor import Floor
from openevi.schemas.chat_types import ChatStatus

# How often the watcher looks at the clocks.
POLL_S = 0.25


class Timeouts:
    """Ends a chat that runs too long or stays silent, and nudges a silent user once."""

    def __init__(
        self,
        *,
        config: ChatConfig,
        max_chat_duration_s: float,
        clock: Clock,
        floor: Floor,
        paused: Callable[[], bool],
        close: Callable[[ChatStatus, str], Awaitable[None]],
    ) -> None:
        self._config = config
        self._limit_s = max_chat_duration_s
        if config.max_duration.enabled:
            self._limit_s = min(self._limit_s, config.max_duration.duration_s)
        self._clock = clock
        self._floor = floor
        self._paused = paused
        self._close = close

    async def run(self) -> None:
        config, clock, floor = self._config, self._clock, self._floor
        started = clock.monotonic()
        while not floor.closed:
            await clock.sleep(POLL_S)
            floor.settle()
            now = clock.monotonic()
            silent = now - floor.last_activity
            if now - started >= self._limit_s:
                await self._end(ChatStatus.MAX_DURATION_TIMEOUT, "on_max_duration_timeout")
                return
            if floor.speaking or self._paused():
                continue
            if config.inactivity.enabled and silent >= config.inactivity.duration_s:
                await self._end(ChatStatus.INACTIVITY_TIMEOUT, "on_inactivity_timeout")
                return
            interval = config.nudge_interval_s
            if interval is not None and not floor.nudged and silent >= interval:
                floor.nudged = True
                await floor.reply(
                    nudge=True,
                    instruction="The user has been silent for a while. Gently check in with one short question.",
                )

    async def _end(self, status: ChatStatus, event_name: str) -> None:
        """Say the config's goodbye for this end (if enabled), then close the chat."""
        spec = self._config.event_message(event_name)
        if spec.enabled:
            await self._floor.reply(
                speak=spec.text,
                instruction="The conversation is ending because of a time limit. Say a short, kind goodbye.",
            )
            await self._floor.wait_reply()
        await self._close(status, event_name)
