"""Replies in the user's language: the model is told the language, and a voice of it reads the reply."""

from __future__ import annotations

import numpy as np

from openevi.chat.context import Conversation
from openevi.speech.language_voices import voice_for_language
from openevi.speech.tts.espeak import ENGINE, EspeakTTS, espeak_voice_name
from openevi.speech.tts.piper import PiperTTS
from openevi.speech.voices import DEFAULT_VOICE, VOICES

NORA = next(voice for voice in VOICES if voice.name == "Nora")


def _system(convo: Conversation) -> str:
    return convo.messages()[0].content


def test_english_only_chats_keep_the_configured_prompt() -> None:
    convo = Conversation(base_prompt="Be brief.")
    convo.heard("en", None)
    convo.heard(None, None)  # a typed turn: no language
    assert _system(convo) == "Be brief."


def test_the_model_is_told_the_users_language_and_follows_a_switch() -> None:
    convo = Conversation(base_prompt="Be brief.")
    convo.heard("fr", None)
    assert _system(convo) == "Be brief.\n\nThe user is speaking French. Answer in French."
    assert _system(convo) == convo.messages(extra_system="")[0].content.rstrip()
    convo.heard("it", None)
    assert "Answer in Italian." in _system(convo)
    # back to English after another language: said explicitly, or the model keeps the last one
    convo.heard("en", None)
    assert _system(convo).endswith("The user is speaking English. Answer in English.")
    convo.heard("xx", None)
    assert "the language with code 'xx'" in _system(convo)


def test_a_voice_of_the_language_reads_the_reply() -> None:
    assert voice_for_language(NORA, None) is NORA
    assert voice_for_language(NORA, "en") is NORA
    assert voice_for_language(DEFAULT_VOICE, "EN-us") is DEFAULT_VOICE


def test_other_languages_fall_back_to_espeak_with_the_personas_gender() -> None:
    french_female = voice_for_language(NORA, "fr")
    assert (french_female.engine, french_female.model, french_female.gender) == (ENGINE, "fr+f3", "female")
    italian_male = voice_for_language(DEFAULT_VOICE, "it")
    assert (italian_male.engine, italian_male.model, italian_male.language) == (ENGINE, "it", "it")
    assert voice_for_language(DEFAULT_VOICE, "zh").model == "cmn"
    assert espeak_voice_name("ja") == "ja"
    # a language espeak-ng does not know keeps the persona's voice
    assert voice_for_language(NORA, "zz") is NORA


async def test_espeak_voice_speaks_through_the_local_tts() -> None:
    voice = voice_for_language(NORA, "fr")
    tts = PiperTTS()
    try:
        chunks = [chunk async for chunk in tts.synthesize("Bonjour, comment allez-vous ?", voice=voice)]
    finally:
        await tts.aclose()
    audio = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float64)
    assert tts.sample_rate == EspeakTTS.sample_rate == 24_000
    assert 0.8 < audio.size / 24_000 < 5 and np.sqrt(np.mean(audio**2)) > 300


async def test_text_starting_with_a_dash_is_spoken_not_taken_as_an_option() -> None:
    voice = voice_for_language(DEFAULT_VOICE, "fr")
    chunks = [chunk async for chunk in EspeakTTS().synthesize("--version", voice=voice)]
    assert sum(len(chunk) for chunk in chunks) > 24_000  # speech, not espeak's version line
