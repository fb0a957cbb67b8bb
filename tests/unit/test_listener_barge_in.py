"""Listener: when the user's speech over the assistant counts as an interruption, and backchannels."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from openevi.chat.config import TurnDetection
from openevi.chat.listener import Listener, is_backchannel
from tests.support.fakes import FixedASR, ListenerLog, LoudnessVAD

RATE = 16_000
FRAME = 512
FRAME_MS = 32


def frames(pattern: str) -> bytes:
    """'s' = a loud (speech) frame, '.' = a quiet one; linear16 at 16 kHz."""
    samples = np.concatenate([np.full(FRAME, 0.5 if c == "s" else 0.0, dtype=np.float32) for c in pattern])
    return (samples * 32767).astype("<i2").tobytes()


class Heard(ListenerLog):
    def __init__(self) -> None:
        super().__init__()
        self.speech_at: list[int] = []  # frame index at which user_speaking was told
        self.frame = 0

    async def user_speaking(self, span_ms: int) -> None:
        self.speech_at.append(self.frame)


async def listen(pattern: str, *, min_interruption_ms: int, text: str = "hello") -> Heard:
    heard = Heard()
    listener = Listener(
        vad=LoudnessVAD(),
        asr=FixedASR(text),
        prosody=None,
        turn_detection=TurnDetection(end_of_turn_silence_ms=500, prefix_padding_ms=0, speech_detection_threshold=0.5),
        min_interruption_ms=min_interruption_ms,
        verbose=False,
        events=heard,
    )
    listener.configure_pcm(RATE, 1)
    for i, c in enumerate(pattern):
        heard.frame = i
        await listener.push(frames(c))
    for _ in range(50):  # let the turn's transcription task (scheduled, not awaited) finish
        await asyncio.sleep(0)
    await listener.aclose()
    assert heard.errors == []
    return heard


async def test_interruption_counts_from_onset_across_short_gaps() -> None:
    # Words of 3 frames (96 ms) with 2-frame (64 ms) gaps: 200 ms from the onset is frame 6.
    pattern = "sss..sss..sss..sss" + "." * 20
    heard = await listen(pattern, min_interruption_ms=200)
    assert heard.speech_at, "the user spoke for well over 200 ms"
    first = heard.speech_at[0]
    assert first * FRAME_MS + FRAME_MS >= 200  # not before the window
    # Counting voiced frames only (the old rule) would have waited for the 7th voiced frame (frame 11).
    assert first <= 7, f"fired at frame {first}"


async def test_isolated_clicks_do_not_add_up_to_an_interruption() -> None:
    # One loud frame, then single loud frames 160 ms apart: a long span but little voice.
    pattern = "s....s....s....s" + "." * 20
    heard = await listen(pattern, min_interruption_ms=300)
    assert heard.speech_at == []


async def test_short_speech_is_not_an_interruption_but_is_still_a_turn() -> None:
    heard = await listen("sss" + "." * 20, min_interruption_ms=200, text="Mm-hmm.")
    assert heard.speech_at == []
    assert len(heard.turns) == 1 and heard.turns[0].interrupting is False


async def test_a_turn_that_took_the_floor_says_so() -> None:
    heard = await listen("s" * 12 + "." * 20, min_interruption_ms=200)
    assert heard.speech_at and len(heard.turns) == 1 and heard.turns[0].interrupting is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mm-hmm.", True),
        ("Yeah, right.", True),
        ("okay", True),
        ("I see.", True),
        ("Got it!", True),
        ("Stop.", False),
        ("No, wait.", False),
        ("Yes, please tell me more", False),
        ("I see it", False),
        ("", False),
    ],
)
def test_backchannel_words(text: str, expected: bool) -> None:
    assert is_backchannel(text) is expected
