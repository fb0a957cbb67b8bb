"""Where the listener's playback is: the clock that paces audio_output and places it on the timeline.

`PlaybackClock` is the engine's default `Playback` (chat/ports.py): it assumes the client plays what it
is sent in real time. A transport that hears back from its player (Twilio echoes a `mark` once the
audio before it has played) confirms each message's audio; from then on a message counts as heard
in full only once confirmed, so a slow line never makes the engine believe more was heard than was.
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
        self._sent_s = 0.0  # seconds of audio sent (less what a clear dropped unheard)
        self._confirming = False
        self._unconfirmed: dict[str, float] = {}  # message key -> where its audio ends (sent_s)

    def wait_before_next(self) -> float:
        """Seconds to wait before sending more, to stay within the lead."""
        return max(0.0, self._until - self._clock.monotonic() - self._lead_s)

    def play(self, seconds: float, key: str | None = None) -> int:
        """`seconds` of audio (of message `key`) were sent; returns where they start (ms since the
        chat started)."""
        starts = max(self._until, self._clock.monotonic())
        self._until = starts + seconds
        self._sent_s += seconds
        if key is not None and self._confirming:
            self._unconfirmed[key] = self._sent_s
        return int((starts - self._chat_started) * 1000)

    @property
    def sent_s(self) -> float:
        """Seconds of audio sent so far (the position the next audio will start at)."""
        return self._sent_s

    def played_s(self) -> float:
        """Seconds of the audio sent that the listener has heard."""
        played = self._sent_s - max(0.0, self._until - self._clock.monotonic())
        if self._unconfirmed:
            # Not confirmed: the message's audio has not all been heard, whatever the clock says.
            played = min(played, min(self._unconfirmed.values()) - 1e-6)
        return max(0.0, played)

    def confirm_by_transport(self) -> None:
        """The transport will `confirm` each message's audio once its player has played it."""
        self._confirming = True

    def confirm(self, key: str) -> None:
        """Message `key`'s audio has been played to its end."""
        self._unconfirmed.pop(key, None)

    def clear(self) -> None:
        """The listener stopped playback (barge-in, pause): nothing is queued any more."""
        self._sent_s = self.played_s()
        self._unconfirmed.clear()
        self._until = 0.0

    @property
    def playing(self) -> bool:
        if self._unconfirmed:
            return True
        return self._until > self._clock.monotonic()
