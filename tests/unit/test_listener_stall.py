"""Listener: a stream that stops arriving is silence, counted on the chat's clock (FakeClock here)."""

from __future__ import annotations

from openevi.chat.config import TurnDetection
from openevi.chat.listener import STALL_S, Listener
from tests.support.fakes import FakeClock, ListenerLog, LoudnessVAD, settle
from tests.unit.test_listener_barge_in import FRAME, RATE, FixedASR, frames

FRAME_S = FRAME / RATE
WINDOW_MS = 500


def make_listener(clock: FakeClock, heard: ListenerLog) -> Listener:
    listener = Listener(
        vad=LoudnessVAD(),
        asr=FixedASR("hello there"),
        prosody=None,
        turn_detection=TurnDetection(
            end_of_turn_silence_ms=WINDOW_MS, prefix_padding_ms=0, speech_detection_threshold=0.5
        ),
        min_interruption_ms=200,
        verbose=False,
        events=heard,
        clock=clock,
    )
    listener.configure_pcm(RATE, 1)
    return listener


async def speak_in_real_time(listener: Listener, clock: FakeClock, pattern: str) -> None:
    """One frame per frame-time, as a live microphone sends."""
    for c in pattern:
        await listener.push(frames(c))
        await clock.advance(FRAME_S)


async def test_speech_then_no_more_audio_ends_the_turn_on_the_clock() -> None:
    clock, heard = FakeClock(), ListenerLog()
    listener = make_listener(clock, heard)
    turns = heard.turns
    await speak_in_real_time(listener, clock, "s" * 15)  # speech, then the client stops sending
    await clock.advance(STALL_S)
    assert turns == []  # a late chunk is not silence yet
    await clock.advance(WINDOW_MS / 1000)
    await settle()
    assert [t.text for t in turns] == ["hello there"]
    assert turns[0].end_ms <= 15 * 32 + 32  # the turn's audio is the speech, not the missing time
    await listener.aclose()


async def test_a_steady_stream_of_speech_is_never_cut_by_the_clock() -> None:
    clock, heard = FakeClock(), ListenerLog()
    listener = make_listener(clock, heard)
    turns = heard.turns
    # Chunks of 4 frames, each sent a little late (jitter under STALL_S), 3 s of speech in all.
    for _ in range(24):
        await listener.push(frames("ssss"))
        await clock.advance(4 * FRAME_S + 0.1)
    assert turns == []
    await listener.aclose()


async def test_audio_sent_ahead_of_real_time_is_not_stalled() -> None:
    clock, heard = FakeClock(), ListenerLog()
    listener = make_listener(clock, heard)
    turns = heard.turns
    await listener.push(frames("s" * 60))  # ~2 s of speech in one burst
    await clock.advance(1.5)  # still inside the burst's own real-time playout
    assert turns == []
    await clock.advance(0.5 + STALL_S + WINDOW_MS / 1000)
    await settle()
    assert len(turns) == 1
    await listener.aclose()


async def test_a_stalled_stream_that_resumes_with_speech_continues_the_turn() -> None:
    clock, heard = FakeClock(), ListenerLog()
    listener = make_listener(clock, heard)
    turns = heard.turns
    await speak_in_real_time(listener, clock, "s" * 10)
    await clock.advance(STALL_S + 0.1)  # a gap shorter than the silence window
    await speak_in_real_time(listener, clock, "s" * 10 + "." * 20)
    await settle()
    assert len(turns) == 1 and turns[0].end_ms > 20 * 32
    await listener.aclose()
