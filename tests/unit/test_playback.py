"""PlaybackClock, the engine's default Playback port, on a fake clock."""

from __future__ import annotations

from openevi.chat.playback import PlaybackClock
from openevi.chat.ports import Playback
from tests.support.fakes import FakeClock


def test_pieces_are_placed_back_to_back_and_paced_within_the_lead() -> None:
    clock = FakeClock(start=100.0)
    playback: Playback = PlaybackClock(lead_s=0.5, clock=clock)
    assert not playback.playing and playback.wait_before_next() == 0
    assert playback.play(0.25) == 0  # starts now, at the chat's start
    assert playback.play(0.25) == 250  # right after the first piece
    assert playback.play(0.25) == 500
    assert playback.playing
    # 0.75 s queued, 0.5 s of lead allowed: the next piece waits 0.25 s.
    assert abs(playback.wait_before_next() - 0.25) < 1e-9
    clock.now += 1.0  # everything has been heard
    assert not playback.playing and playback.wait_before_next() == 0
    assert playback.play(0.25) == 1000  # after a gap, a piece starts when it is sent


def test_clear_drops_what_was_not_heard() -> None:
    clock = FakeClock(start=5.0)
    playback = PlaybackClock(lead_s=0.2, clock=clock)
    playback.play(2.0)
    clock.now += 0.5
    assert playback.playing and playback.wait_before_next() > 1
    playback.clear()  # barge-in
    assert not playback.playing and playback.wait_before_next() == 0
    assert playback.play(0.1) == 500  # the next answer starts where the listener is now


def test_played_counts_what_was_heard_and_confirmations_bound_it() -> None:
    clock = FakeClock(start=0.0)
    playback = PlaybackClock(lead_s=10.0, clock=clock)
    playback.play(1.0, "m1")
    playback.play(1.0, "m2")
    clock.now += 1.5
    assert playback.sent_s == 2.0 and abs(playback.played_s() - 1.5) < 1e-9
    playback.clear()  # barge-in: what was not heard is gone
    assert abs(playback.sent_s - 1.5) < 1e-9 and not playback.playing
    confirmed = PlaybackClock(lead_s=10.0, clock=clock)
    confirmed.confirm_by_transport()  # a phone line echoes each message once played
    confirmed.play(1.0, "m1")
    clock.now += 5.0
    assert confirmed.playing and confirmed.played_s() < 1.0  # the clock alone is not believed
    confirmed.confirm("m1")
    assert not confirmed.playing and confirmed.played_s() == 1.0
