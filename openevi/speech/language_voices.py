"""Which local voice answers in a language: a shipped voice of it, else espeak-ng's, else the persona's.

The shipped neural voices speak US English only (docs/voices.md). When the user speaks another
language the reply is written in it, and read by espeak-ng (robotic, but in the right language)
with the persona's gender where espeak-ng has a variant; without espeak-ng, the persona's own voice
reads it (with an English accent) and that is logged once per language.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from openevi.speech.tts.espeak import ENGINE, espeak_voice_name
from openevi.speech.voices import VOICES, Voice

__all__ = ["voice_for_language"]

logger = logging.getLogger("openevi.speech.voices")

_FEMALE_VARIANT = "+f3"  # espeak-ng's female voice variant


def _speaks(voice: Voice, language: str) -> bool:
    return voice.language.lower().split("-")[0] == language


@lru_cache(maxsize=256)
def _espeak(language: str, gender: str | None) -> Voice | None:
    name = espeak_voice_name(language)
    if name is None:
        logger.info("No local voice speaks %r (no espeak-ng voice for it); replies keep the persona's voice", language)
        return None
    female = gender == "female"
    return Voice(
        id=f"espeak-ng-{name}{'-f' if female else ''}",
        name=f"espeak-ng {name}{' (female)' if female else ''}",
        engine=ENGINE,
        model=name + (_FEMALE_VARIANT if female else ""),
        description=f"espeak-ng formant synthesis, language {name}: robotic, used where no neural voice speaks it.",
        language=language,
        license="GPL-3.0-or-later (espeak-ng, run as a separate program)",
        gender="female" if female else "male",
    )


def voice_for_language(voice: Voice, language: str | None) -> Voice:
    """`voice` when it speaks `language` (or the language is unknown), else the best local voice for it."""
    if not language:
        return voice
    code = language.lower().split("-")[0]
    if _speaks(voice, code):
        return voice
    shipped = [v for v in VOICES if _speaks(v, code)]
    if shipped:
        return next((v for v in shipped if v.gender == voice.gender), shipped[0])
    return _espeak(code, voice.gender) or voice
