"""Smart Turn in the listener on REAL recordings (tests/support/real_speech.py), with the real Silero
VAD, the real model and the real Whisper (the words confirm an unsure verdict): a finished sentence
is answered after the short silence; JFK's pause after "And so, my fellow Americans" does not end his
turn (the silence window alone ends it there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from openevi.chat.config import TurnDetection
from openevi.chat.listener import HeardTurn, Listener
from openevi.chat.turn_detection import EndOfTurnRule
from openevi.schemas.config_defaults import TURN_DETECTION
from openevi.speech.asr.base import Transcript
from openevi.speech.asr.whisper import WhisperASR
from openevi.speech.turn.smart_turn import SmartTurnModel
from openevi.speech.vad.silero import SileroVAD
from tests.support.fakes import ListenerLog
from tests.support.real_speech import RATE, FetchError, Utterance, utterances

FRAME = 512
FRAME_MS = 32.0
SILENCE_MS = TURN_DETECTION["end_of_turn_silence_ms"]  # 800


def _utterance(speaker: str) -> Utterance:
    try:
        found = utterances("en", speaker=speaker)
    except FetchError as exc:  # a missing corpus is a failure, never a skip
        pytest.fail(f"could not fetch the real speech corpus: {exc}")
    assert found, f"no recording of {speaker} in the corpus"
    return found[0]


class _Counted:
    """The real model, telling when no check is in flight, so each verdict lands before the next frame."""

    def __init__(self, model: SmartTurnModel) -> None:
        self.model = model
        self.sample_rate = model.sample_rate
        self.idle = asyncio.Event()
        self.idle.set()
        self.verdicts: list[float] = []

    async def probability(self, audio: np.ndarray) -> float:
        self.idle.clear()
        try:
            probability = await self.model.probability(audio)
            self.verdicts.append(probability)
            return probability
        finally:
            self.idle.set()

    async def load(self) -> None:
        await self.model.load()

    async def aclose(self) -> None:
        pass


class _Whisper:
    """The real recognizer, telling when no transcription is in flight (the words land in order too)."""

    def __init__(self, asr: WhisperASR) -> None:
        self.asr = asr
        self.capabilities = asr.capabilities
        self.idle = asyncio.Event()
        self.idle.set()
        self._busy = 0

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        self._busy += 1
        self.idle.clear()
        try:
            return await self.asr.transcribe(audio, prompt=prompt)
        finally:
            self._busy -= 1
            if not self._busy:
                self.idle.set()

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurnModel:
    return SmartTurnModel()


@pytest.fixture
async def whisper() -> AsyncIterator[WhisperASR]:
    asr = WhisperASR()
    await asr.load()
    yield asr
    await asr.aclose()


async def _listen(
    audio: np.ndarray, vad: SileroVAD, asr: WhisperASR, model: _Counted | None
) -> tuple[list[HeardTurn], list[int]]:
    """Stream 16 kHz audio frame by frame; returns the turns heard and the frame at which each ended."""
    words = _Whisper(asr)
    ended_at: list[int] = []
    frame = 0

    class Events(ListenerLog):
        def mark(self, stage: str) -> None:
            if stage == "turn_end":
                ended_at.append(frame)

        def error(self, message: str) -> None:
            pytest.fail(message)

    events = Events()
    listener = Listener(
        vad=vad,
        asr=words,
        prosody=None,
        turn_detection=TurnDetection(**TURN_DETECTION),
        min_interruption_ms=800,
        verbose=False,
        events=events,
        end_of_turn=EndOfTurnRule(model, confirm_by_words=True) if model is not None else None,
    )
    listener.configure_pcm(RATE, 1)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    for frame in range(pcm.size // FRAME):
        await listener.push(pcm[frame * FRAME : (frame + 1) * FRAME].tobytes())
        for _ in range(3):
            await asyncio.sleep(0)
        if model is not None:
            await model.idle.wait()  # the verdict lands before the next frame
            await words.idle.wait()  # and so do the words that confirm it
        for _ in range(5):
            await asyncio.sleep(0)
    await words.idle.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    await listener.aclose()
    return events.turns, ended_at


def _with_silence(audio: np.ndarray, seconds: float = 3.0) -> tuple[np.ndarray, int]:
    """The recording, then `seconds` of silence; also the frame where its own audio ends."""
    return np.concatenate((audio, np.zeros(int(seconds * RATE), np.float32))), audio.size // FRAME


async def test_a_finished_sentence_ends_after_the_short_silence(
    vad: SileroVAD, smart_turn: SmartTurnModel, whisper: WhisperASR
) -> None:
    sentence = _utterance("sphinxtrain-sa1")  # "She had your dark suit in greasy wash water all year."
    audio, speech_end = _with_silence(sentence.load())
    model = _Counted(smart_turn)
    turns, ended_at = await _listen(audio, vad, whisper, model)
    assert len(turns) == 1 and turns[0].text.lower().startswith("she had")
    assert model.verdicts and model.verdicts[-1] > 0.5  # it sounded finished
    # Ended on the model's word: before the silence window would have run out after the recording.
    assert speech_end <= ended_at[0] < speech_end + SILENCE_MS / FRAME_MS


async def test_jfks_pause_inside_the_sentence_does_not_end_his_turn(
    vad: SileroVAD, smart_turn: SmartTurnModel, whisper: WhisperASR
) -> None:
    jfk = _utterance("john-f-kennedy")  # "And so, my fellow Americans … ask not what your country can do for you …"
    audio, _ = _with_silence(jfk.load())
    turns, _ = await _listen(audio, vad, whisper, _Counted(smart_turn))
    assert len(turns) == 1  # one user_message, with the words on both sides of the pause
    assert "americans" in turns[0].text.lower() and "ask not" in turns[0].text.lower()
    silence_only, _ = await _listen(audio, vad, whisper, None)
    assert len(silence_only) >= 2  # the silence window alone cuts him off in the pause
    assert "ask not" not in silence_only[0].text.lower()
