"""Voice references as Hume apps write them map onto local voices, and configs show them as posted."""

from __future__ import annotations

import logging
import uuid

import pytest

from openevi.speech import voices
from openevi.speech.voices import (
    DEFAULT_VOICE,
    HUME_LIBRARY,
    LOCAL_FOR,
    Voice,
    find_hume_voice,
    local_voice_for,
    public_voice,
    resolve_voice,
)

AVA_SONG = "5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c"


@pytest.fixture
def female_voice(monkeypatch: pytest.MonkeyPatch) -> Voice:
    """A second local voice and its one mapping line, as adding a female voice would do."""
    amy = Voice(id="local-female", name="Amy", engine="piper", model="en_US-amy-medium", description="test")
    monkeypatch.setattr(voices, "VOICES", (*voices.VOICES, amy))
    monkeypatch.setitem(LOCAL_FOR, ("female", None), "Amy")
    return amy


def test_shipped_voice_by_id_or_name_is_itself() -> None:
    assert resolve_voice(voice_id=DEFAULT_VOICE.id) is DEFAULT_VOICE
    assert resolve_voice(name="joe", provider="HUME_AI") is DEFAULT_VOICE


@pytest.mark.parametrize(
    ("voice_id", "name", "provider"),
    [
        (None, "ITO", "HUME_AI"),
        (None, "Ava Song", "HUME_AI"),
        (None, "kora", "HUME_AI"),
        (AVA_SONG, None, None),
        ("0b7e1b7a-0000-4000-8000-123456789abc", None, "CUSTOM_VOICE"),
        (None, "My Cloned Voice", None),
        ("", "", ""),
        ("not-a-uuid at all", "??", "SOMETHING_ELSE"),
    ],
)
def test_any_reference_resolves_to_a_local_voice(voice_id: str | None, name: str | None, provider: str | None) -> None:
    voice = resolve_voice(voice_id=voice_id, name=name, provider=provider)
    assert voice in voices.VOICES


def test_library_voices_follow_the_gender_mapping(female_voice: Voice) -> None:
    assert resolve_voice(voice_id=AVA_SONG, provider="HUME_AI") is female_voice
    assert resolve_voice(name="KORA", provider="HUME_AI") is female_voice
    assert resolve_voice(name="ITO", provider="HUME_AI").gender == "male"
    # unknown gender and unknown voices still get the default, never the female voice by accident
    assert resolve_voice(name="WHIMSY", provider="HUME_AI") is DEFAULT_VOICE
    assert resolve_voice(voice_id="custom-123", provider="CUSTOM_VOICE") is DEFAULT_VOICE


def test_accent_mapping_prefers_the_most_specific_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    british = Voice(id="local-gb", name="Alan", engine="piper", model="en_GB-alan-medium", description="test")
    monkeypatch.setattr(voices, "VOICES", (*voices.VOICES, british))
    monkeypatch.setitem(LOCAL_FOR, ("male", "en-GB"), "Alan")
    # the accent's voice wins over the deeper voice the name suggests (local="Hugo")
    assert resolve_voice(name="Male English Actor", provider="HUME_AI") is british
    assert resolve_voice(name="Colton Rivers", provider="HUME_AI") is local_voice_for("male", None)  # accent unknown
    assert resolve_voice(name="Colton Rivers", provider="HUME_AI") is not british
    assert local_voice_for(None, None) is DEFAULT_VOICE


def test_mapping_to_a_missing_local_voice_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOCAL_FOR, ("female", None), "NoSuchVoice")
    assert resolve_voice(name="Ava Song", provider="HUME_AI") is DEFAULT_VOICE


def test_unknown_voice_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    wanted = f"custom-{uuid.uuid4()}"
    with caplog.at_level(logging.INFO, logger="openevi.speech.voices"):
        for _ in range(3):
            resolve_voice(voice_id=wanted, provider="CUSTOM_VOICE")
        resolve_voice(name="ITO", provider="HUME_AI")  # known: not logged
    logged = [r for r in caplog.records if wanted in r.getMessage()]
    assert len(logged) == 1 and DEFAULT_VOICE.name in logged[0].getMessage()
    assert not [r for r in caplog.records if "ITO" in r.getMessage()]


def test_library_catalogue_is_consistent() -> None:
    names = [v.name.lower() for v in HUME_LIBRARY]
    ids = [v.id for v in HUME_LIBRARY if v.id]
    assert len(names) == len(set(names)) and len(ids) == len(set(ids))
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert find_hume_voice(voice_id=AVA_SONG) == find_hume_voice(name="ava song")


def test_public_voice_keeps_what_was_posted_and_fills_the_rest() -> None:
    shown = public_voice(voice_id=None, name="ITO", provider="HUME_AI")
    assert (shown["name"], shown["provider"]) == ("ITO", "HUME_AI")
    ito = shown["id"]
    assert public_voice(voice_id=None, name="ITO", provider="HUME_AI")["id"] == ito
    assert str(uuid.UUID(ito)) == ito  # a stable, well-formed id
    assert ito != public_voice(voice_id=None, name="KORA", provider="HUME_AI")["id"]
    # a known id gets its library name; the provider defaults to HUME_AI for library voices
    assert public_voice(voice_id=AVA_SONG, name=None, provider=None) == {
        "id": AVA_SONG,
        "name": "Ava Song",
        "provider": "HUME_AI",
    }
    # a custom voice: exactly as posted; the name falls back to the id, the provider to the API default
    assert public_voice(voice_id="abc-123", name=None, provider="CUSTOM_VOICE") == {
        "id": "abc-123",
        "name": "abc-123",
        "provider": "CUSTOM_VOICE",
    }
    assert public_voice(voice_id=None, name="My Voice", provider=None)["provider"] == "CUSTOM_VOICE"
    # the shipped voice by name gets its id
    assert public_voice(voice_id=None, name="Joe", provider=None) == {
        "id": DEFAULT_VOICE.id,
        "name": "Joe",
        "provider": "HUME_AI",
    }


def test_every_gendered_library_voice_speaks_with_a_local_voice_of_its_gender() -> None:
    for library in HUME_LIBRARY:
        voice = resolve_voice(voice_id=library.id, name=library.name, provider="HUME_AI")
        if library.gender is None:
            assert voice is DEFAULT_VOICE, library.name
        else:
            assert voice.gender == library.gender, library.name
    used = {resolve_voice(name=library.name, provider="HUME_AI") for library in HUME_LIBRARY}
    assert len({v for v in used if v.gender == "female"}) >= 2
    assert len({v for v in used if v.gender == "male"}) >= 2


def test_a_name_suggesting_a_deeper_voice_gets_it() -> None:
    comforting = resolve_voice(voice_id="99d2cb9c-9011-4ead-8734-641656d3df66", provider="HUME_AI")
    ito = resolve_voice(name="ITO", provider="HUME_AI")
    assert comforting.gender == ito.gender == "male"
    assert comforting.pitch < ito.pitch  # Hugo, lower than the default male voice
    warm = resolve_voice(name="Warm American Female", provider="HUME_AI")
    assert warm.gender == "female" and warm.pitch < resolve_voice(name="Ava Song", provider="HUME_AI").pitch


def test_derived_voices_resolve_by_their_own_id_and_name() -> None:
    for voice in voices.VOICES:
        assert resolve_voice(voice_id=voice.id) is voice
        assert resolve_voice(name=voice.name.upper()) is voice
    assert len({voice.id for voice in voices.VOICES}) == len(voices.VOICES)
