"""TurnDetector: prefix padding, end of turn after the silence window, pauses, hysteresis, events."""

from __future__ import annotations

import numpy as np
import pytest

from openevi.chat.turn_detection import (
    SilenceStarted,
    SpeechOngoing,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
)
from openevi.speech.vad.registry import create_vad
from tests.support.speech import speak

FRAME = 512
FRAME_MS = 32.0


def _feed(detector: TurnDetector, probs: list[float], *, flush: bool = False) -> list[TurnEvent]:
    """Frames whose samples encode their index, so the audio of a turn can be traced back."""
    events: list[TurnEvent] = []
    for i, prob in enumerate(probs):
        events += detector.push(np.full(FRAME, float(i), dtype=np.float32), prob)
    if flush:
        events += detector.flush()
    return events


def _frames(audio: np.ndarray) -> list[int]:
    return [int(v) for v in audio.reshape(-1, FRAME)[:, 0]]


def _ms(ms: float) -> int:
    return round(ms / FRAME_MS)


def test_one_turn_with_prefix_padding() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=300, end_of_turn_silence_ms=800)
    probs = [0.0] * _ms(1000) + [0.9] * _ms(1500) + [0.05] * _ms(900)
    events = _feed(detector, probs)
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert len(ended) == 1
    onset = _ms(1000)
    assert [e.at_ms for e in events if isinstance(e, SpeechStarted)] == [onset * FRAME_MS]
    turn = ended[0]
    frames = _frames(turn.audio)
    padding = 10  # ceil(300 / 32)
    assert frames[0] == onset - padding and frames[padding] == onset  # padding, then speech
    assert turn.begin_ms == (onset - padding) * FRAME_MS
    speech_end = onset + _ms(1500)
    assert frames[-1] == speech_end  # speech plus the first quiet frame, no trailing silence
    assert turn.end_ms == (speech_end + 1) * FRAME_MS
    assert turn.speech_ms == _ms(1500) * FRAME_MS
    silence = [e for e in events if isinstance(e, SilenceStarted)]
    assert len(silence) == 1 and silence[0].at_ms == speech_end * FRAME_MS
    np.testing.assert_array_equal(silence[0].audio, turn.audio)  # speculation is exact
    # The turn ends once 800 ms of silence have passed, not later.
    assert isinstance(events[-1], TurnEnded)
    assert not detector.in_turn


def test_short_pause_does_not_end_the_turn() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=300, end_of_turn_silence_ms=800)
    probs = [0.0] * 5 + [0.9] * _ms(1000) + [0.1] * _ms(300) + [0.9] * _ms(1000) + [0.0] * _ms(900)
    events = _feed(detector, probs)
    kinds = [type(e) for e in events if not isinstance(e, SpeechOngoing)]
    assert kinds == [SpeechStarted, SilenceStarted, SpeechResumed, SilenceStarted, TurnEnded]
    turn = next(e for e in events if isinstance(e, TurnEnded))
    assert len(turn.audio) // FRAME == 5 + _ms(1000) + _ms(300) + _ms(1000) + 1


def test_silence_exactly_at_window_ends_it() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=800)
    events = _feed(detector, [0.9] * 10 + [0.0] * 24)  # 24 frames = 768 ms: not yet
    assert not any(isinstance(e, TurnEnded) for e in events)
    assert any(isinstance(e, TurnEnded) for e in detector.push(np.zeros(FRAME, np.float32), 0.0))  # 800 ms


def test_hysteresis_band_does_not_flap() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=500, hysteresis=0.15)
    # Hovering between 0.4 and 0.55 after onset: neither silence nor a new onset.
    probs = [0.9] * 5 + [0.45, 0.55, 0.4, 0.52] * 10
    events = _feed(detector, probs)
    assert not any(isinstance(e, SilenceStarted | TurnEnded) for e in events)
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1


def test_speech_ongoing_counts_speech_for_barge_in() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=100, end_of_turn_silence_ms=800)
    events = _feed(detector, [0.0] * 3 + [0.8] * 10)
    ongoing = [e.speech_ms for e in events if isinstance(e, SpeechOngoing)]
    assert ongoing == [FRAME_MS * n for n in range(1, 11)]


def test_flush_ends_a_turn_in_progress() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=800)
    events = _feed(detector, [0.9] * 10, flush=True)
    assert isinstance(events[-1], TurnEnded) and len(events[-1].audio) == 10 * FRAME
    assert detector.flush() == []


def test_two_turns_timestamps_continue() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=64, end_of_turn_silence_ms=320)
    probs = ([0.0] * 5 + [0.9] * 5 + [0.0] * 10) * 2
    ended = [e for e in _feed(detector, probs) if isinstance(e, TurnEnded)]
    assert [e.begin_ms for e in ended] == [3 * FRAME_MS, 23 * FRAME_MS]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TurnDetector(0.0, 300, 800)
    with pytest.raises(ValueError):
        TurnDetector(0.5, 300, 800).push(np.zeros(100, np.float32), 0.9)


def test_real_speech_through_silero() -> None:
    """espeak speech + 900 ms of silence, through the real VAD: exactly one turn, padding included."""
    vad = create_vad("silero")
    stream = vad.stream()
    detector = TurnDetector(0.5, prefix_padding_ms=300, end_of_turn_silence_ms=800)
    speech = speak("I would like to book a table for two people tonight.")
    lead = np.zeros(16_000, dtype=np.float32)
    audio = np.concatenate([lead, speech, np.zeros(int(0.9 * 16_000), dtype=np.float32)])
    events: list[TurnEvent] = []
    for i in range(len(audio) // FRAME):
        frame = audio[i * FRAME : (i + 1) * FRAME]
        events += detector.push(frame, stream.probability(frame))
    ended = [e for e in events if isinstance(e, TurnEnded)]
    assert len(ended) == 1
    turn = ended[0]
    started = next(e for e in events if isinstance(e, SpeechStarted))
    assert started.at_ms - turn.begin_ms == pytest.approx(10 * FRAME_MS)  # the prefix padding
    assert turn.begin_ms < 1000 < started.at_ms + 100
    assert turn.end_ms > 1000 + 0.8 * len(speech) / 16
