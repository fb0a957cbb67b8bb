"""Server → client chat messages, as the SDK's SubscribeEvent types define them."""

from __future__ import annotations

import base64
from typing import Any

from openevi.audio.wav import wav_chunk

_WIRE_SPECIAL = {"surprise_negative": "Surprise (negative)", "surprise_positive": "Surprise (positive)"}


def wire_scores(scores: dict[str, float]) -> dict[str, float]:
    """Emotion scores keyed as EVI sends them ("Aesthetic Appreciation", "Surprise (negative)")."""
    return {
        _WIRE_SPECIAL.get(name) or name.replace("_", " ").title(): round(float(value), 6)
        for name, value in scores.items()
    }


def chat_metadata(*, chat_id: str, chat_group_id: str, request_id: str) -> dict[str, Any]:
    return {"type": "chat_metadata", "chat_id": chat_id, "chat_group_id": chat_group_id, "request_id": request_id}


def user_message(
    *,
    text: str,
    begin_ms: int,
    end_ms: int,
    from_text: bool,
    interim: bool = False,
    prosody: dict[str, float] | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "user_message",
        "message": {"role": "user", "content": text},
        "models": {"prosody": {"scores": wire_scores(prosody)}} if prosody is not None else {},
        "time": {"begin": begin_ms, "end": end_ms},
        "from_text": from_text,
        "interim": interim,
    }
    if language:
        message["language"] = language
    return message


def assistant_message(*, message_id: str, text: str, from_text: bool) -> dict[str, Any]:
    return {
        "type": "assistant_message",
        "id": message_id,
        "message": {"role": "assistant", "content": text},
        "models": {},
        "from_text": from_text,
        "is_quick_response": False,
    }


def assistant_prosody(*, message_id: str, scores: dict[str, float]) -> dict[str, Any]:
    return {"type": "assistant_prosody", "id": message_id, "models": {"prosody": {"scores": wire_scores(scores)}}}


def audio_output(*, message_id: str, index: int, pcm: bytes, rate: int) -> dict[str, Any]:
    """A piece of the answer's audio as the engine emits it: 16-bit mono PCM at `rate`.

    Each transport frames it its own way: the EVI socket as a base64 WAV (`wire_form`), the phone
    bridge as μ-law."""
    return {"type": "audio_output", "id": message_id, "index": index, "pcm": pcm, "rate": rate}


def wire_form(message: dict[str, Any]) -> dict[str, Any]:
    """The message as the EVI socket carries it: `audio_output` PCM becomes `data`, a base64 WAV."""
    if message.get("type") != "audio_output" or "pcm" not in message:
        return message
    wire = {k: v for k, v in message.items() if k not in ("pcm", "rate")}
    wire["data"] = base64.b64encode(wav_chunk(message["pcm"], int(message["rate"]))).decode()
    return wire


def assistant_end() -> dict[str, Any]:
    return {"type": "assistant_end"}


def user_interruption(*, time_ms: int) -> dict[str, Any]:
    return {"type": "user_interruption", "time": time_ms}


def tool_call(
    *, name: str, parameters: str, tool_call_id: str, tool_type: str, response_required: bool
) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "name": name,
        "parameters": parameters,
        "tool_call_id": tool_call_id,
        "tool_type": tool_type,
        "response_required": response_required,
    }


def tool_response(*, tool_call_id: str, content: str, tool_name: str | None, tool_type: str) -> dict[str, Any]:
    return {
        "type": "tool_response",
        "tool_call_id": tool_call_id,
        "content": content,
        "tool_name": tool_name,
        "tool_type": tool_type,
    }


def tool_error(
    *, tool_call_id: str, error: str, content: str | None, code: str | None, tool_type: str
) -> dict[str, Any]:
    return {
        "type": "tool_error",
        "tool_call_id": tool_call_id,
        "error": error,
        "content": content,
        "code": code,
        "level": "warn",
        "tool_type": tool_type,
    }


def error(*, code: str, slug: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "slug": slug, "message": message}
    if request_id:
        body["request_id"] = request_id
    return body


# Error codes sent in `error` messages (documented in docs/protocol.md).
E_INVALID_MESSAGE = ("E0101", "invalid_message")
E_MESSAGE_TOO_LARGE = ("E0102", "message_too_large")
E_INVALID_AUDIO = ("E0201", "invalid_audio")
E_LANGUAGE_MODEL = ("E0700", "language_model_error")
E_TTS = ("E0710", "speech_synthesis_error")
E_TOOL = ("E0720", "tool_error")
E_INTERNAL = ("E0500", "internal_error")
