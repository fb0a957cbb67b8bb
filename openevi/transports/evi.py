"""The EVI WebSocket wire, client → server: what a text frame must be before the engine sees it.

Binary frames are audio and go to `ChatSession.handle_binary_audio` as they are; a text frame must
be one JSON object within the size limit, or the client gets the error this module names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openevi.chat import messages as msg


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
