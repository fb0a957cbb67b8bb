"""The end-of-turn model's two rules on TurnDetector, with scripted verdicts (no model, no clock)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from openevi.chat.config import TurnDetection
from openevi.chat.listener import Listener
from openevi.chat.turn_detection import (
    EndOfTurnRule,
    SilenceStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnJudged,
    finishes_sentence,
)
from tests.support.fakes import FixedASR, ListenerLog, LoudnessVAD

FRAME = 512
FRAME_MS = 32.0


class ScriptedTurnModel:
    """Answers P(complete) from a script, one value per check; remembers the audio it was shown."""

    sample_rate = 16_000

    def __init__(self, *answers: float | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[int] = []

    async def probability(self, audio: np.ndarray) -> float:
        self.seen.append(audio.size)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _detector(model: ScriptedTurnModel, *, silence_ms: float = 800) -> TurnDetector:
    rule = EndOfTurnRule(model, min_silence_ms=200, max_silence_ms=2000)
    return TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=silence_ms, rule=rule)


def _frames(n: int) -> int:
    return round(n / FRAME_MS)


async def _run(detector: TurnDetector, probs: list[float]) -> list[tuple[int, TurnEvent]]:
    """Feed frames; each silence is judged right away (as if the model answered within one frame).
    Returns (frame index, event) pairs."""
    out: list[tuple[int, TurnEvent]] = []
    for i, prob in enumerate(probs):
        for event in detector.push(np.zeros(FRAME, dtype=np.float32), prob):
            out.append((i, event))
            if isinstance(event, SilenceStarted):
                out += [(i, judged) for judged in await detector.judge(event)]
    return out


def _ended_after_silence_ms(events: list[tuple[int, TurnEvent]]) -> list[float]:
    """For each TurnEnded: how long the silence before it had lasted (ms, whole frames)."""
    silence_at = 0
    lasted = []
    for i, event in events:
        if isinstance(event, SilenceStarted):
            silence_at = i
        if isinstance(event, TurnEnded):
            lasted.append((i + 1 - silence_at) * FRAME_MS)
    return lasted


async def test_a_complete_sounding_turn_ends_after_the_short_silence() -> None:
    model = ScriptedTurnModel(0.9)
    events = await _run(_detector(model), [0.9] * _frames(1000) + [0.0] * _frames(3000))
    assert _ended_after_silence_ms(events) == [224.0]  # the first whole frame at or past 200 ms
    assert [e.complete for _, e in events if isinstance(e, TurnJudged)] == [True]
    assert model.seen == [(_frames(1000) + 1) * FRAME]  # speech plus the first quiet frame


async def test_an_unfinished_sounding_turn_waits_past_the_window_up_to_the_maximum() -> None:
    model = ScriptedTurnModel(0.1)
    events = await _run(_detector(model), [0.9] * _frames(1000) + [0.0] * _frames(3000))
    assert _ended_after_silence_ms(events) == [2016.0]
    assert [e.complete for _, e in events if isinstance(e, TurnJudged)] == [False]


async def test_speech_within_the_extended_wait_continues_the_same_turn() -> None:
    model = ScriptedTurnModel(0.2, 0.95)  # a pause mid-sentence, then the real end
    probs = [0.9] * _frames(1000) + [0.0] * _frames(1200) + [0.9] * _frames(600) + [0.0] * _frames(1000)
    events = await _run(_detector(model), probs)
    assert _ended_after_silence_ms(events) == [224.0]  # one turn: the 1.2 s pause did not end it
    assert len(model.seen) == 2 and model.seen[1] > model.seen[0]  # the second check saw the whole turn


async def test_without_the_model_the_silence_window_applies() -> None:
    detector = TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=800)
    events = await _run(detector, [0.9] * _frames(1000) + [0.0] * _frames(3000))
    assert _ended_after_silence_ms(events) == [800.0]
    assert not [e for _, e in events if isinstance(e, TurnJudged)]


async def test_a_failing_model_falls_back_to_the_silence_window() -> None:
    model = ScriptedTurnModel(RuntimeError("onnx blew up"))
    events = await _run(_detector(model), [0.9] * _frames(1000) + [0.0] * _frames(3000))
    assert _ended_after_silence_ms(events) == [800.0]


async def test_a_shorter_silence_window_than_the_minimum_wins() -> None:
    model = ScriptedTurnModel(0.9)
    events = await _run(_detector(model, silence_ms=96), [0.9] * _frames(1000) + [0.0] * _frames(1000))
    assert _ended_after_silence_ms(events) == [96.0]


async def test_a_late_complete_verdict_ends_the_turn_at_once() -> None:
    """The model answers after the short silence has already passed: the turn ends with the verdict."""
    detector = _detector(ScriptedTurnModel())
    silence: SilenceStarted | None = None
    for prob in [0.9] * _frames(1000) + [0.0] * _frames(400):
        for event in detector.push(np.zeros(FRAME, dtype=np.float32), prob):
            silence = event if isinstance(event, SilenceStarted) else silence
            assert not isinstance(event, TurnEnded)
    assert silence is not None and detector.in_turn
    events = detector.verdict(silence.at_ms, 0.8)
    assert [type(e) for e in events] == [TurnJudged, TurnEnded]
    assert not detector.in_turn


async def test_a_verdict_on_a_silence_that_is_over_is_ignored() -> None:
    detector = _detector(ScriptedTurnModel())
    silences: list[SilenceStarted] = []
    probs = [0.9] * _frames(500) + [0.0] * _frames(100) + [0.9] * _frames(500) + [0.0] * _frames(64)
    for prob in probs:
        silences += [e for e in detector.push(np.zeros(FRAME, dtype=np.float32), prob) if isinstance(e, SilenceStarted)]
    assert len(silences) == 2
    assert detector.verdict(silences[0].at_ms, 0.99) == []  # speech resumed after that pause
    assert detector.silence_limit_ms == 800  # still the window: no verdict on this silence yet
    assert detector.in_turn


async def test_checks_run_concurrently_with_the_frames() -> None:
    """judge() awaits the model; frames pushed meanwhile are not held up."""
    gate = asyncio.Event()

    class SlowModel(ScriptedTurnModel):
        async def probability(self, audio: np.ndarray) -> float:
            await gate.wait()
            return 0.9

    detector = _detector(SlowModel())
    silence = None
    for prob in [0.9] * _frames(600) + [0.0]:
        for event in detector.push(np.zeros(FRAME, dtype=np.float32), prob):
            silence = event if isinstance(event, SilenceStarted) else silence
    assert silence is not None
    pending = asyncio.ensure_future(detector.judge(silence))
    for _ in range(_frames(300)):
        assert not [e for e in detector.push(np.zeros(FRAME, dtype=np.float32), 0.0) if isinstance(e, TurnEnded)]
    gate.set()
    assert [type(e) for e in await pending] == [TurnJudged, TurnEnded]


# --- the listener's hook: the verdict reaches the detector while frames keep arriving -------------


class _Ear(ListenerLog):
    """A Listener on a loudness VAD and a fixed transcript; records at which frame each turn ended."""

    def __init__(self, model: ScriptedTurnModel | None) -> None:
        super().__init__()
        self.frame = 0
        self.turn_end_frames: list[int] = []
        self.listener = Listener(
            vad=LoudnessVAD(),
            asr=FixedASR("hello there"),
            prosody=None,
            turn_detection=TurnDetection(
                end_of_turn_silence_ms=800, prefix_padding_ms=0, speech_detection_threshold=0.5
            ),
            min_interruption_ms=800,
            verbose=False,
            events=self,
            end_of_turn=EndOfTurnRule(model, min_silence_ms=200, max_silence_ms=2000) if model else None,
        )
        self.listener.configure_pcm(16_000, 1)

    def mark(self, stage: str) -> None:
        if stage == "turn_end":
            self.turn_end_frames.append(self.frame)

    def error(self, message: str) -> None:
        pytest.fail(message)

    async def hear(self, pattern: str) -> None:
        """'s' = a loud frame, '.' = a quiet one; the loop runs between frames, as with a live socket."""
        for c in pattern:
            await self.listener.push((np.full(FRAME, 0.5 if c == "s" else 0.0) * 32767).astype("<i2").tobytes())
            for _ in range(5):
                await asyncio.sleep(0)
            self.frame += 1
        for _ in range(20):
            await asyncio.sleep(0)
        await self.listener.aclose()


def _quiet_ms(ms: int) -> str:
    return "." * _frames(ms)


async def test_listener_ends_a_complete_sounding_turn_after_the_short_silence() -> None:
    ear = _Ear(ScriptedTurnModel(0.9))
    speech = "s" * _frames(1000)
    await ear.hear(speech + _quiet_ms(3000))
    assert len(ear.turns) == 1 and ear.turns[0].text == "hello there"
    silence_frames = ear.turn_end_frames[0] + 1 - len(speech)  # frames of silence heard by then
    assert 200 <= silence_frames * FRAME_MS < 800  # ended on the model's word, before the window


async def test_listener_holds_an_unfinished_sounding_pause_open() -> None:
    ear = _Ear(ScriptedTurnModel(0.1, 0.9))
    await ear.hear("s" * _frames(800) + _quiet_ms(1200) + "s" * _frames(800) + _quiet_ms(3000))
    assert len(ear.turns) == 1  # the 1.2 s pause did not end the turn


async def test_listener_without_a_model_ends_turns_on_the_silence_window() -> None:
    ear = _Ear(None)
    await ear.hear("s" * _frames(800) + _quiet_ms(1200) + "s" * _frames(800) + _quiet_ms(3000))
    assert len(ear.turns) == 2  # the same pause splits the turn in two


# --- confirm_by_words: an unsure "complete" waits for the speculative transcript to finish a sentence


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("Please enter the conference pin number.", True),
        ("Is it open on Sunday?", True),
        ("Thanks!", True),
        ("And so my fellow Americans", False),  # Whisper leaves a clause that goes on bare
        ("And so, my fellow Americans,", False),
        ("I would like to book a table for.", False),
        ("Please enter the", False),
        ("", False),
    ],
)
def test_finishes_sentence(text: str, finished: bool) -> None:
    assert finishes_sentence(text) is finished


def _silence_of(detector: TurnDetector, speech_ms: int, quiet_ms: int) -> SilenceStarted:
    events: list[TurnEvent] = []
    for prob in [0.9] * _frames(speech_ms) + [0.0] * _frames(quiet_ms):
        events += detector.push(np.zeros(FRAME, dtype=np.float32), prob)
    silence = [e for e in events if isinstance(e, SilenceStarted)]
    assert len(silence) == 1 and not [e for e in events if isinstance(e, TurnEnded)]
    return silence[0]


def _confirming_detector() -> TurnDetector:
    rule = EndOfTurnRule(ScriptedTurnModel(), min_silence_ms=200, max_silence_ms=2000, confirm_by_words=True)
    return TurnDetector(0.5, prefix_padding_ms=0, end_of_turn_silence_ms=800, rule=rule)


def _quiet(detector: TurnDetector, ms: int) -> list[TurnEvent]:
    events: list[TurnEvent] = []
    for _ in range(_frames(ms)):
        events += detector.push(np.zeros(FRAME, dtype=np.float32), 0.0)
    return [e for e in events if isinstance(e, TurnEnded)]


def test_an_unsure_complete_verdict_waits_for_words_that_finish_a_sentence() -> None:
    detector = _confirming_detector()
    silence = _silence_of(detector, 1000, 96)
    assert [type(e) for e in detector.verdict(silence.at_ms, 0.8)] == [TurnJudged]
    assert _quiet(detector, 300) == []  # past the short silence: still open, the words are not in
    assert [type(e) for e in detector.heard(silence.at_ms, "I'd like a coffee, please.")] == [TurnEnded]


def test_words_that_go_on_overrule_an_unsure_complete_verdict() -> None:
    detector = _confirming_detector()
    silence = _silence_of(detector, 1000, 300)
    detector.verdict(silence.at_ms, 0.86)
    assert detector.heard(silence.at_ms, "And so my fellow Americans") == []
    assert detector.silence_limit_ms == 2000  # held open like an unfinished-sounding turn
    assert len(_quiet(detector, 2000)) == 1


def test_a_sure_complete_verdict_needs_no_words() -> None:
    detector = _confirming_detector()
    silence = _silence_of(detector, 1000, 96)
    detector.verdict(silence.at_ms, 0.97)
    assert len(_quiet(detector, 200)) == 1


def test_without_words_an_unsure_complete_verdict_falls_back_to_the_window() -> None:
    detector = _confirming_detector()
    silence = _silence_of(detector, 1000, 96)
    detector.verdict(silence.at_ms, 0.8)
    assert detector.silence_limit_ms == 800
