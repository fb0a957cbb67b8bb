"""The EVI WebSocket wire, client → server: what a text frame must be before the engine sees it.

Binary frames are audio and go to `ChatSession.handle_audio` as they are; a text frame must be one
JSON object within the size limit, or the client gets the error this module names. An `audio_input`
is unwrapped here too (its base64 decoded), so the engine only ever sees audio bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from openevi.schemas import messages as msg


@dataclass(frozen=True)
class FrameError:
    """Why a frame was refused: an `error` message's (code, slug) and text."""

    code: tuple[str, str]
    message: str


AUDIO_NOT_ALLOWED = FrameError(("E0103", "audio_not_allowed"), "Control-plane sockets cannot send audio")


def parse_frame(raw: str | bytes, *, max_bytes: int) -> dict[str, Any] | FrameError:
    """A text frame as the JSON object it carries, or the error to answer it with."""
    if len(raw) > max_bytes:
        return FrameError(msg.E_MESSAGE_TOO_LARGE, "Message too large")
    try:
        data = json.loads(raw)
    except ValueError:
        return FrameError(msg.E_INVALID_MESSAGE, "Messages must be JSON objects")
    except RecursionError:
        return FrameError(msg.E_INVALID_MESSAGE, "Message is nested too deeply")
    if not isinstance(data, dict):
        return FrameError(msg.E_INVALID_MESSAGE, "Messages must be JSON objects")
    return data


def is_audio(data: dict[str, Any]) -> bool:
    return data.get("type") == "audio_input"


@dataclass(frozen=True)
class AudioInput:
    """An `audio_input` unwrapped: its audio bytes (PCM or a container chunk) and its session tag."""

    audio: bytes
    custom_session_id: str | None


def audio_input(data: dict[str, Any]) -> AudioInput | FrameError:
    """The audio an `audio_input` object carries, or the error to answer it with."""
    payload, custom = data.get("data"), data.get("custom_session_id")
    if not isinstance(payload, str):
        return FrameError(msg.E_INVALID_MESSAGE, "Invalid audio_input: data must be a base64 string")
    if custom is not None and not isinstance(custom, str):
        return FrameError(msg.E_INVALID_MESSAGE, "Invalid audio_input: custom_session_id must be a string")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return FrameError(msg.E_INVALID_AUDIO, "audio_input data is not valid base64")
    return AudioInput(audio, custom)
