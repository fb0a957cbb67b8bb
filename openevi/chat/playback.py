"""Where the listener's playback is: the clock that paces audio_output and places it on the timeline.

`PlaybackClock` is the engine's default `Playback` (chat/ports.py): it assumes the client plays what it
is sent in real time, which holds for the EVI socket's players and for Twilio alike.
"""

from __future__ import annotations

from openevi.chat.clock import Clock, SystemClock


class PlaybackClock:
    """Estimates when audio already sent will have finished playing, assuming real-time playback."""

    def __init__(self, *, lead_s: float, clock: Clock | None = None, chat_started: float | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lead_s = lead_s
        self._chat_started = chat_started if chat_started is not None else self._clock.monotonic()
        self._until = 0.0  # clock time at which everything sent so far has been played

    def wait_before_next(self) -> float:
        """Seconds to wait before sending more, to stay within the lead."""
        return max(0.0, self._until - self._clock.monotonic() - self._lead_s)

    def play(self, seconds: float) -> int:
        """`seconds` of audio were sent; returns where they start (ms since the chat started)."""
        starts = max(self._until, self._clock.monotonic())
        self._until = starts + seconds
        return int((starts - self._chat_started) * 1000)

    def clear(self) -> None:
        """The listener stopped playback (barge-in, pause): nothing is queued any more."""
        self._until = 0.0

    @property
    def playing(self) -> bool:
        return self._until > self._clock.monotonic()
