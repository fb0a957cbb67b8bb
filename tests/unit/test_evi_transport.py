"""The EVI wire's text frames: one JSON object within the size limit, or a named error."""

from __future__ import annotations

import pytest

from openevi.transports.evi import FrameError, is_audio, parse_frame


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
