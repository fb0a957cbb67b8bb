"""End-of-turn detection from per-frame speech probabilities (pure logic: no I/O, no clock).

Feed every VAD frame with its probability; events come back in order. Times are milliseconds of
audio since the stream started, so behaviour depends only on the audio, never on wall-clock time.

    idle ──speech──► speaking ──quiet──► trailing silence ──(end_of_turn_silence_ms)──► TurnEnded
                        ▲                        │
                        └──────speech────────────┘ SpeechResumed

Hysteresis: speech starts or resumes at `prob >= threshold` but only counts as silence below
`threshold - hysteresis`, so a probability hovering at the threshold does not flap.

With an `EndOfTurnRule` (OPENEVI_TURN_DETECTOR=smart-turn) a trained model judges each silence from
the turn's audio (`judge`, asynchronous: the model runs in a thread): a turn that sounds complete
ends after `min_silence_ms`, one that sounds unfinished waits up to `max_silence_ms`; until the
verdict arrives (or if the model fails) the silence window applies as before. With
`confirm_by_words`, a "complete" verdict the model is not sure of holds only once the turn's
speculative transcript is in (`heard`) and ends like a sentence: "And so my fellow Americans" (no
full stop) or "… for the." keep the turn open. The final user_message waits for that transcript
anyway, so the confirmation costs it little time.
"""

from __future__ import annotations

import logging
import math
import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from openevi.speech.turn.base import EndOfTurnModel

log = logging.getLogger("openevi.chat.turn_detection")

__all__ = [
    "EndOfTurnRule",
    "SilenceStarted",
    "SpeechOngoing",
    "SpeechResumed",
    "SpeechStarted",
    "TurnDetector",
    "TurnEnded",
    "TurnEvent",
    "TurnJudged",
    "finishes_sentence",
]

# Words an English phrase does not end on: conjunctions, articles, prepositions, possessives, auxiliaries.
# fmt: off
MID_PHRASE_WORDS = frozenset((
    "and", "but", "or", "nor", "so", "because", "if", "when", "while", "although", "though", "than", "that",
    "which", "who", "whose", "whom", "the", "a", "an", "this", "these", "those", "my", "your", "our",
    "their", "his", "her", "its", "to", "of", "in", "on", "at", "for", "with", "from", "by", "about", "into",
    "onto", "over", "under", "through", "between", "after", "before", "is", "are", "was", "were", "be",
    "been", "am", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "do", "does",
    "did", "has", "have", "had", "not", "no", "very",
))
# fmt: on


def finishes_sentence(text: str) -> bool:
    """Whether a transcript ends like a finished sentence: on ".", "?" or "!" (Whisper punctuates what
    it hears as finished, and leaves a trailing clause bare or with a comma), and not on a word a
    phrase cannot end on ("… for the.")."""
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and bool(re.search(r"[.?!\u2026]$", text)) and words[-1] not in MID_PHRASE_WORDS


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began at `at_ms` (the first speech frame; the turn's audio starts earlier, by the padding)."""

    at_ms: float


@dataclass(frozen=True)
class SpeechOngoing:
    """Another speech frame; `speech_ms` is this turn's speech so far, `at_ms` when this frame began."""

    speech_ms: float
    at_ms: float = 0.0


@dataclass(frozen=True)
class SilenceStarted:
    """Silence began at `at_ms`; `audio` is the turn so far, exactly what TurnEnded will carry if the
    silence lasts, so a transcription of it may start now (speculatively)."""

    at_ms: float
    audio: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back within the silence window: drop any speculative transcription."""

    at_ms: float


@dataclass(frozen=True)
class TurnEnded:
    """The user's turn is over: `audio` spans [begin_ms, end_ms) — prefix padding, speech, and the
    first quiet frame; the rest of the trailing silence is left out."""

    audio: np.ndarray = field(repr=False)
    begin_ms: float
    end_ms: float
    speech_ms: float


@dataclass(frozen=True)
class TurnJudged:
    """The end-of-turn model judged the silence that began at `at_ms`: P(complete) = `probability`."""

    at_ms: float
    probability: float
    complete: bool


TurnEvent = SpeechStarted | SpeechOngoing | SilenceStarted | SpeechResumed | TurnJudged | TurnEnded


@dataclass(frozen=True)
class EndOfTurnRule:
    """How a trained model's verdict bends the silence window (docs/protocol.md, "End of turn")."""

    model: EndOfTurnModel
    min_silence_ms: float = 200.0
    """A complete-sounding turn ends after this much silence (never later than the silence window)."""
    max_silence_ms: float = 2000.0
    """An unfinished-sounding turn waits this long (never less than the silence window)."""
    threshold: float = 0.5
    """P(complete) above this is complete."""
    confirm_by_words: bool = False
    """A complete verdict waits for the turn's transcript; one that does not finish a sentence overrules it."""
    sure: float = 0.9
    """With `confirm_by_words`: P(complete) above this needs no words."""


class _State(Enum):
    IDLE = "idle"
    SPEAKING = "speaking"
    TRAILING = "trailing"  # quiet, but not yet for end_of_turn_silence_ms


class TurnDetector:
    """Turns speech probabilities into turn events. One per chat; not thread-safe."""

    def __init__(
        self,
        threshold: float,
        prefix_padding_ms: float,
        end_of_turn_silence_ms: float,
        sample_rate: int = 16_000,
        frame_samples: int = 512,
        *,
        hysteresis: float = 0.15,
        rule: EndOfTurnRule | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.release = max(0.0, threshold - hysteresis)
        self.end_of_turn_silence_ms = end_of_turn_silence_ms
        self.rule = rule
        self.frame_samples = frame_samples
        self.frame_ms = 1000.0 * frame_samples / sample_rate
        self._padding: deque[np.ndarray] = deque(maxlen=math.ceil(prefix_padding_ms / self.frame_ms))
        self._frames = 0  # frames seen since the stream started
        self.reset_turn()

    @property
    def in_turn(self) -> bool:
        return self._state is not _State.IDLE

    def reset_turn(self) -> None:
        """Forget the current turn (e.g. the engine discarded it); the clock keeps running."""
        self._state = _State.IDLE
        self._turn: list[np.ndarray] = []
        self._begin_ms = 0.0
        self._speech_ms = 0.0
        self._silence_ms = 0.0  # start of the current trailing silence
        self._kept = 0  # frames of the turn that TurnEnded keeps (up to the first quiet frame)
        self._complete: bool | None = None  # the model's verdict on the current silence, once known
        self._sure = False  # the verdict needs no confirmation by words
        self._sentence: bool | None = None  # whether its transcript finishes a sentence, once known
        self._padding.clear()

    def push(self, frame: np.ndarray, probability: float) -> list[TurnEvent]:
        """One frame (`frame_samples` of float32 mono) and its speech probability."""
        if frame.shape != (self.frame_samples,):
            raise ValueError(f"Expected frames of {self.frame_samples} samples, got shape {frame.shape}")
        at_ms = self._frames * self.frame_ms
        self._frames += 1
        if self._state is _State.IDLE:
            return self._idle(frame, probability, at_ms)
        self._turn.append(frame)
        if self._state is _State.SPEAKING:
            if probability < self.release:
                self._state = _State.TRAILING
                self._silence_ms = at_ms
                self._complete = None
                self._sentence = None
                self._kept = len(self._turn)
                return [SilenceStarted(at_ms, self._audio())]
            if probability >= self.threshold:
                self._speech_ms += self.frame_ms
                return [SpeechOngoing(self._speech_ms, at_ms)]
            return []  # in the hysteresis band: still speaking, though not counted as speech
        # Trailing silence: only a confident speech frame brings the turn back.
        if probability >= self.threshold:
            self._state = _State.SPEAKING
            self._speech_ms += self.frame_ms
            return [SpeechResumed(at_ms), SpeechOngoing(self._speech_ms, at_ms)]
        if at_ms + self.frame_ms - self._silence_ms >= self.silence_limit_ms:
            return [self._end()]
        return []

    @property
    def silence_limit_ms(self) -> float:
        """How long the current silence must last to end the turn, given the model's verdict."""
        if self.rule is None or self._complete is None:
            return self.end_of_turn_silence_ms
        if self._complete and not self._sure and self.rule.confirm_by_words:
            if self._sentence is None:
                return self.end_of_turn_silence_ms  # waiting for the words (if they never come: the window)
            complete = self._sentence
        else:
            complete = self._complete
        if complete:
            return min(self.rule.min_silence_ms, self.end_of_turn_silence_ms)
        return max(self.rule.max_silence_ms, self.end_of_turn_silence_ms)

    async def judge(self, silence: SilenceStarted) -> list[TurnEvent]:
        """Run the end-of-turn model on the turn so far (`silence.audio`) and apply its verdict.

        The events to handle come back, as from `push`; none if there is no rule, the model failed,
        or the silence is over by the time it answers (speech resumed or the turn already ended)."""
        if self.rule is None:
            return []
        try:
            probability = await self.rule.model.probability(silence.audio)
        except Exception:
            log.exception("end-of-turn model failed; the silence window applies")
            return []
        return self.verdict(silence.at_ms, probability)

    def verdict(self, silence_at_ms: float, probability: float) -> list[TurnEvent]:
        """Apply P(complete) to the silence that began at `silence_at_ms` (if it is still going)."""
        if self.rule is None or self._state is not _State.TRAILING or silence_at_ms != self._silence_ms:
            return []
        self._complete = probability > self.rule.threshold
        self._sure = probability > self.rule.sure
        events: list[TurnEvent] = [TurnJudged(silence_at_ms, probability, self._complete)]
        return events + self._end_if_due()

    def heard(self, silence_at_ms: float, text: str) -> list[TurnEvent]:
        """The transcript of the turn up to the silence that began at `silence_at_ms` (`confirm_by_words`)."""
        if self.rule is None or self._state is not _State.TRAILING or silence_at_ms != self._silence_ms:
            return []
        self._sentence = finishes_sentence(text)
        return self._end_if_due()

    def _end_if_due(self) -> list[TurnEvent]:
        if self._frames * self.frame_ms - self._silence_ms >= self.silence_limit_ms:
            return [self._end()]
        return []

    def flush(self) -> list[TurnEvent]:
        """End of input: a turn in progress ends now."""
        if self._state is _State.IDLE:
            return []
        if self._state is _State.SPEAKING:
            self._kept = len(self._turn)
        return [self._end()]

    def _idle(self, frame: np.ndarray, probability: float, at_ms: float) -> list[TurnEvent]:
        if probability < self.threshold:
            self._padding.append(frame)
            return []
        self._state = _State.SPEAKING
        self._turn = [*self._padding, frame]
        self._begin_ms = at_ms - len(self._padding) * self.frame_ms
        self._padding.clear()
        self._speech_ms = self.frame_ms
        return [SpeechStarted(at_ms), SpeechOngoing(self._speech_ms, at_ms)]

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._turn[: self._kept]).astype(np.float32, copy=False)

    def _end(self) -> TurnEnded:
        audio = self._audio()
        event = TurnEnded(
            audio=audio,
            begin_ms=self._begin_ms,
            end_ms=self._begin_ms + self._kept * self.frame_ms,
            speech_ms=self._speech_ms,
        )
        self.reset_turn()
        return event
