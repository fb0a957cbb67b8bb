"""The engine's typed server messages: their EVI wire form is what the SDK's own models accept."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import pytest
from hume.empathic_voice import types as sdk
from pydantic import BaseModel

from openevi.schemas import messages as msg
from openevi.speech.prosody.base import EMOTIONS

SCORES = {name: round(i / 64, 6) for i, name in enumerate(EMOTIONS)}  # all 48, as the SDK requires

# One of each, with the SDK model that must read its wire form.
EXAMPLES: list[tuple[msg.ServerMessage, type[BaseModel]]] = [
    (msg.ChatMetadata(chat_id="c", chat_group_id="g", request_id="r"), sdk.ChatMetadata),
    (msg.UserMessage(text="hi", begin_ms=10, end_ms=900, from_text=False, prosody=SCORES), sdk.UserMessage),
    (msg.UserMessage(text="h", begin_ms=0, end_ms=5, from_text=False, interim=True, language="en"), sdk.UserMessage),
    (msg.AssistantMessage(id="m", text="Hello.", from_text=True), sdk.AssistantMessage),
    (msg.AssistantProsody(id="m", scores=SCORES), sdk.AssistantProsody),
    (msg.AudioOutput(id="m", index=3, pcm=b"\x01\x00\xff\x7f" * 10, rate=24_000), sdk.AudioOutput),
    (msg.AssistantEnd(), sdk.AssistantEnd),
    (msg.UserInterruption(time_ms=1234), sdk.UserInterruption),
    (
        msg.ToolCall(name="f", parameters="{}", tool_call_id="t", tool_type="function", response_required=True),
        sdk.ToolCallMessage,
    ),
    (msg.ToolResponse(tool_call_id="t", content="ok", tool_name="f", tool_type="builtin"), sdk.ToolResponseMessage),
    (msg.ToolError(tool_call_id="t", error="no", content=None, code="x", tool_type="builtin"), sdk.ToolErrorMessage),
    (msg.Error.of(msg.E_TTS, "failed", request_id="r"), sdk.WebSocketError),
    (
        msg.SessionSettingsApplied(settings={"type": "session_settings", "system_prompt": "Be brief."}),
        sdk.SessionSettings,
    ),
]


@pytest.mark.parametrize(("message", "model"), EXAMPLES, ids=lambda x: getattr(x, "type", ""))
def test_the_sdk_reads_every_wire_form(message: msg.ServerMessage, model: type[BaseModel]) -> None:
    wire = message.to_dict()
    assert wire["type"] == message.type
    parsed = model.model_validate(wire)
    # Nothing the SDK knows is lost or changed (it keeps what it does not model as extras).
    assert _without_nones(parsed.model_dump(by_alias=True)) == _without_nones(wire)


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value


def test_emotion_scores_are_keyed_as_evi_names_them() -> None:
    scores = {"joy": 0.5, "surprise_negative": 0.25, "aesthetic_appreciation": 0.125}
    wire = msg.AssistantProsody(id="m", scores=scores).to_dict()
    assert wire["models"]["prosody"]["scores"] == {
        "Joy": 0.5,
        "Surprise (negative)": 0.25,
        "Aesthetic Appreciation": 0.125,
    }


def test_audio_output_is_framed_as_a_wav_of_the_same_pcm() -> None:
    pcm = bytes(range(256)) * 4
    wire = msg.AudioOutput(id="m", index=0, pcm=pcm, rate=16_000).to_dict()
    assert set(wire) == {"type", "id", "index", "data"}
    with wave.open(io.BytesIO(base64.b64decode(wire["data"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm


def test_custom_session_id_is_carried_only_when_set() -> None:
    assert "custom_session_id" not in msg.AssistantEnd().to_dict()
    assert msg.AssistantEnd(custom_session_id="s-1").to_dict() == {"type": "assistant_end", "custom_session_id": "s-1"}
    echoed = msg.SessionSettingsApplied(
        settings={"custom_session_id": "s-1", "voice_id": "ITO"}, custom_session_id="s-1"
    )
    assert echoed.to_dict() == {"type": "session_settings", "custom_session_id": "s-1", "voice_id": "ITO"}


def test_an_error_without_request_id_leaves_it_out() -> None:
    assert msg.Error.of(msg.E_INVALID_AUDIO, "bad").to_dict() == {
        "type": "error",
        "code": "E0201",
        "slug": "invalid_audio",
        "message": "bad",
    }
