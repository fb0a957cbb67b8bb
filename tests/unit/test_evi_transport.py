"""The EVI wire's text frames: one JSON object within the size limit, or a named error."""

from __future__ import annotations

import pytest

from openevi.transports.evi import AudioInput, FrameError, audio_input, is_audio, parse_frame


def test_a_json_object_passes_through() -> None:
    assert parse_frame('{"type": "user_input", "text": "hi"}', max_bytes=1000) == {"type": "user_input", "text": "hi"}
    assert is_audio({"type": "audio_input", "data": ""}) and not is_audio({"type": "user_input"})


@pytest.mark.parametrize(
    ("raw", "slug", "words"),
    [
        ("not json", "invalid_message", "JSON objects"),
        ("[1, 2]", "invalid_message", "JSON objects"),
        ('"a string"', "invalid_message", "JSON objects"),
        ("[" * 100_000 + "]" * 100_000, "invalid_message", "nested too deeply"),
        ('{"text": "' + "x" * 2000 + '"}', "message_too_large", "too large"),
    ],
)
def test_bad_frames_are_named(raw: str, slug: str, words: str) -> None:
    refused = parse_frame(raw, max_bytes=300_000 if "[" in raw else 1000)
    assert isinstance(refused, FrameError) and refused.code[1] == slug and words in refused.message


def test_an_audio_input_is_unwrapped_to_its_bytes() -> None:
    unwrapped = audio_input({"type": "audio_input", "data": "AAECAw==", "custom_session_id": "s-1"})
    assert unwrapped == AudioInput(b"\x00\x01\x02\x03", "s-1")
    assert audio_input({"type": "audio_input", "data": ""}) == AudioInput(b"", None)


@pytest.mark.parametrize(
    ("data", "slug", "words"),
    [
        ({"type": "audio_input"}, "invalid_message", "data must be a base64 string"),
        ({"type": "audio_input", "data": 12}, "invalid_message", "data must be a base64 string"),
        ({"type": "audio_input", "data": "not base64!!"}, "invalid_audio", "not valid base64"),
        ({"type": "audio_input", "data": "AAAA", "custom_session_id": 7}, "invalid_message", "custom_session_id"),
    ],
)
def test_a_bad_audio_input_is_named(data: dict[str, object], slug: str, words: str) -> None:
    refused = audio_input(data)
    assert isinstance(refused, FrameError) and refused.code[1] == slug and words in refused.message
