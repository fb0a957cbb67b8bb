"""A reply voice that follows the user: the style chosen per sentence, how it is rendered, where it applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from piper.config import SynthesisConfig

from openevi.chat.listener import HeardTurn
from openevi.llm.base import TextDelta
from openevi.schemas.chat_types import ChatStatus
from openevi.speech.prosody.acoustic import analyze
from openevi.speech.tts.espeak import ENGINE as ESPEAK
from openevi.speech.tts.piper import PiperTTS
from openevi.speech.tts.style import FIRST_MAX_PACE, STYLES, choose_style, styled
from openevi.speech.voices import DEFAULT_VOICE, VOICES
from tests.support.fakes import FakeEngine, receive_until

SAD = {"sadness": 0.62, "distress": 0.4, "calmness": 0.3}
ANXIOUS = {"anxiety": 0.58, "fear": 0.3}
ANGRY = {"anger": 0.7, "contempt": 0.4}
JOYFUL = {"joy": 0.66, "excitement": 0.5}
READ_SPEECH = {"interest": 0.39, "concentration": 0.36, "calmness": 0.3}  # typical of calm read speech


@pytest.mark.parametrize(("emotions", "style"), [
    (SAD, "comforting"), (ANXIOUS, "steady"), (ANGRY, "calm"), (JOYFUL, "bright"), (READ_SPEECH, "neutral"),
])  # fmt: skip
def test_the_users_emotion_chooses_the_style(emotions: dict[str, float], style: str) -> None:
    assert choose_style(emotions, "Here is the schedule for tomorrow.").name == style


def test_without_a_strong_emotion_the_words_decide() -> None:
    assert choose_style(None, "That is wonderful news, I am so happy for you!").name == "bright"
    assert choose_style(READ_SPEECH, "I am so sorry, that is terrible and sad.").name == "comforting"
    assert choose_style(None, "The train leaves at nine.").name == "neutral"
    assert choose_style(SAD, "That is wonderful news!").name == "comforting"  # the user's state comes first


def test_styled_voice_scales_the_voice_and_can_leave_its_pitch() -> None:
    assert styled(DEFAULT_VOICE, STYLES["neutral"]) is DEFAULT_VOICE
    calm = styled(DEFAULT_VOICE, STYLES["comforting"])
    assert calm.pace > 1 and calm.pitch < 1 and calm.volume < 1 and calm.instructions
    first = styled(DEFAULT_VOICE, STYLES["comforting"], first=True)
    assert (first.pitch, first.pitch_range) == (1.0, 1.0) and 1 < first.pace <= FIRST_MAX_PACE < calm.pace
    assert first.volume == calm.volume and first.noise == calm.noise
    assert styled(DEFAULT_VOICE, STYLES["bright"], first=True).pace == STYLES["bright"].pace  # quicker costs nothing


async def test_piper_renders_the_style_slower_quieter_or_quicker() -> None:
    sentence = "I am here with you, and we will work through this together."
    tts = PiperTTS(synthesis=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    nora = next(voice for voice in VOICES if voice.name == "Nora")  # its neutral rendering is WORLD's too
    try:
        rendered = {}
        for name in ("neutral", "comforting", "bright"):
            chunks = [c async for c in tts.synthesize(sentence, voice=styled(nora, STYLES[name]))]
            rendered[name] = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float64) / 32768
    finally:
        await tts.aclose()
    assert rendered["comforting"].size > 1.05 * rendered["neutral"].size > 1.1 * rendered["bright"].size
    rms = {name: float(np.sqrt(np.mean(audio**2))) for name, audio in rendered.items()}
    assert rms["comforting"] < 0.9 * rms["neutral"]
    # the project's own scorer hears the intended direction (assistant_prosody measures replies this way)
    arousal = {name: analyze(_to16k(audio)).vad[1] for name, audio in rendered.items()}
    assert arousal["bright"] > arousal["neutral"] > arousal["comforting"], arousal


def _to16k(audio: np.ndarray) -> np.ndarray:
    import soxr

    return np.asarray(soxr.resample(audio.astype(np.float32), 24_000, 16_000), dtype=np.float32)


async def _spoken_voices(tmp_path: Path, heard: HeardTurn, **settings: object) -> tuple[FakeEngine, list[str]]:
    engine = FakeEngine(tmp_path, **settings)
    engine.model.replies.append([TextDelta("I hear you. "), TextDelta("Let us take it one step at a time.")])
    session = engine.session(None)
    queue = session.subscribe()
    await session.start(resumed=False, session_settings=None)
    await session.floor.heard(heard)
    await receive_until(queue, "assistant_end")
    await session.close(ChatStatus.USER_ENDED, reason="bye")
    return engine, [m.content for m in engine.model.requests[0].messages if m.role == "system"]


async def test_a_sad_user_gets_a_comforting_reply_pitch_from_the_second_sentence(tmp_path: Path) -> None:
    engine, _ = await _spoken_voices(tmp_path, HeardTurn("I lost my job today", 0, 900, SAD, "en"))
    first, second = engine.tts.voices
    assert first.pace == FIRST_MAX_PACE and second.pace == STYLES["comforting"].pace and first.volume < 1
    assert first.pitch == DEFAULT_VOICE.pitch and second.pitch < DEFAULT_VOICE.pitch


async def test_the_setting_turns_the_style_off(tmp_path: Path) -> None:
    engine, _ = await _spoken_voices(tmp_path, HeardTurn("I lost my job today", 0, 900, SAD, "en"), reply_style=False)
    assert engine.tts.voices == [DEFAULT_VOICE, DEFAULT_VOICE]


async def test_a_french_turn_is_answered_in_french_by_a_french_voice(tmp_path: Path) -> None:
    engine, system = await _spoken_voices(tmp_path, HeardTurn("J'ai perdu mon travail", 0, 900, None, "fr"))
    assert system[0].endswith("The user is speaking French. Answer in French.")
    assert {(v.engine, v.language) for v in engine.tts.voices} == {(ESPEAK, "fr")}
