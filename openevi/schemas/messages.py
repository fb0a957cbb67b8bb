"""Server → client chat messages, typed: what the engine emits and every transport receives.

Each mirrors one of the SDK's SubscribeEvent types (and the client messages of `schemas/protocol.py`);
`to_dict()` gives the EVI wire shape. `AudioOutput` carries raw PCM: the EVI socket frames it as a
base64 WAV at send time, the phone bridge as μ-law, so the engine never encodes audio for a transport.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from openevi.audio.wav import wav_chunk
from openevi.schemas import protocol as p

_WIRE_SPECIAL = {"surprise_negative": "Surprise (negative)", "surprise_positive": "Surprise (positive)"}


def wire_scores(scores: dict[str, float]) -> dict[str, float]:
    """Emotion scores keyed as EVI sends them ("Aesthetic Appreciation", "Surprise (negative)")."""
    return {
        _WIRE_SPECIAL.get(name) or name.replace("_", " ").title(): round(float(value), 6)
        for name, value in scores.items()
    }


def _prosody(scores: dict[str, float] | None) -> dict[str, Any]:
    return {"prosody": {"scores": wire_scores(scores)}} if scores is not None else {}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Message:
    type: ClassVar[str]
    custom_session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message as the EVI socket carries it (the SDK's shape)."""
        body = {"type": self.type, **self._fields()}
        if self.custom_session_id is not None:
            body["custom_session_id"] = self.custom_session_id
        return body

    def _fields(self) -> dict[str, Any]:
        # By default the wire carries the message's own fields as they are, in declaration order.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "custom_session_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMetadata(_Message):
    type: ClassVar[str] = "chat_metadata"
    chat_id: str
    chat_group_id: str
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserMessage(_Message):
    """A user turn: final, or an interim transcript while the user still speaks."""

    type: ClassVar[str] = "user_message"
    text: str
    begin_ms: int
    end_ms: int
    from_text: bool
    interim: bool = False
    prosody: dict[str, float] | None = None
    language: str | None = None

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "message": {"role": "user", "content": self.text},
            "models": _prosody(self.prosody),
            "time": {"begin": self.begin_ms, "end": self.end_ms},
            "from_text": self.from_text,
            "interim": self.interim,
        }
        if self.language:
            fields["language"] = self.language
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantMessage(_Message):
    type: ClassVar[str] = "assistant_message"
    id: str
    text: str
    from_text: bool

    def _fields(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message": {"role": "assistant", "content": self.text},
            "models": {},
            "from_text": self.from_text,
            "is_quick_response": False,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantProsody(_Message):
    """The emotion of the assistant's own speech, for the assistant_message with the same id."""

    type: ClassVar[str] = "assistant_prosody"
    id: str
    scores: dict[str, float]

    def _fields(self) -> dict[str, Any]:
        return {"id": self.id, "models": _prosody(self.scores)}


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioOutput(_Message):
    """A piece of the answer's audio: 16-bit mono little-endian PCM at `rate`."""

    type: ClassVar[str] = "audio_output"
    id: str
    index: int
    pcm: bytes = field(repr=False)
    rate: int

    def _fields(self) -> dict[str, Any]:
        # Framed here, at send time, not by the engine: other transports want the PCM.
        return {"id": self.id, "index": self.index, "data": base64.b64encode(wav_chunk(self.pcm, self.rate)).decode()}


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantEnd(_Message):
    type: ClassVar[str] = "assistant_end"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserInterruption(_Message):
    type: ClassVar[str] = "user_interruption"
    time_ms: int

    def _fields(self) -> dict[str, Any]:
        return {"time": self.time_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(_Message):
    type: ClassVar[str] = "tool_call"
    name: str
    parameters: str
    tool_call_id: str
    tool_type: str
    response_required: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResponse(_Message):
    """A tool's result: a built-in tool's, or a client's tool_response echoed into the stream."""

    type: ClassVar[str] = "tool_response"
    tool_call_id: str
    content: str
    tool_name: str | None
    tool_type: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolError(_Message):
    """A tool's failure: a built-in tool's, or a client's tool_error echoed into the stream."""

    type: ClassVar[str] = "tool_error"
    tool_call_id: str
    error: str
    content: str | None
    code: str | None
    level: str | None = "warn"
    tool_type: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(_Message):
    """Something went wrong; the chat goes on (codes below, documented in docs/protocol.md)."""

    type: ClassVar[str] = "error"
    code: str
    slug: str
    message: str
    request_id: str | None = None

    @classmethod
    def of(cls, code: tuple[str, str], message: str, *, request_id: str | None = None) -> Error:
        return cls(code=code[0], slug=code[1], message=message, request_id=request_id)

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"code": self.code, "slug": self.slug, "message": self.message}
        if self.request_id:
            fields["request_id"] = self.request_id
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettingsApplied(_Message):
    """The session_settings just applied, echoed as sent (minus secrets), as the SDK expects."""

    type: ClassVar[str] = "session_settings"
    settings: dict[str, Any]

    def _fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k != "type"}


ServerMessage = (
    ChatMetadata
    | UserMessage
    | AssistantMessage
    | AssistantProsody
    | AudioOutput
    | AssistantEnd
    | UserInterruption
    | ToolCall
    | ToolResponse
    | ToolError
    | Error
    | SessionSettingsApplied
)
"""Every message the engine sends to a chat's sockets."""


# Error codes sent in `error` messages (documented in docs/protocol.md).
E_INVALID_MESSAGE = ("E0101", "invalid_message")
E_MESSAGE_TOO_LARGE = ("E0102", "message_too_large")
E_INVALID_AUDIO = ("E0201", "invalid_audio")
E_LANGUAGE_MODEL = ("E0700", "language_model_error")
E_TTS = ("E0710", "speech_synthesis_error")
E_TOOL = ("E0720", "tool_error")
E_INTERNAL = ("E0500", "internal_error")


def echo_tool_result(answer: p.ToolResponse | p.ToolError) -> ToolResponse | ToolError:
    """A client's tool result as the stream shows it (echoed back, as the SDK expects)."""
    if isinstance(answer, p.ToolResponse):
        return ToolResponse(
            tool_call_id=answer.tool_call_id,
            content=answer.content,
            tool_name=answer.tool_name,
            tool_type=answer.tool_type,
        )
    return ToolError(
        tool_call_id=answer.tool_call_id,
        error=answer.error,
        content=answer.content,
        code=answer.code,
        level=answer.level,
        tool_type=answer.tool_type,
    )
