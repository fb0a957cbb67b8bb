"""Chat WebSocket messages sent by clients (and by the control plane), discriminated on `type`.

Field names and shapes follow the `hume` SDK's types (docs/protocol.md sums the protocol up).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class ClientMessage(BaseModel):
    """Base of client messages; unknown fields are ignored, as the hosted service did."""

    model_config = ConfigDict(extra="ignore")
    custom_session_id: str | None = None


class AudioConfiguration(BaseModel):
    encoding: Literal["linear16"]
    sample_rate: Annotated[int, Field(ge=8000, le=192_000)]
    channels: Annotated[int, Field(ge=1, le=8)]
    codec: str | None = None


class Context(BaseModel):
    text: str
    type: Literal["persistent", "temporary", "editable"] = "temporary"


class SessionTool(BaseModel):
    type: Literal["builtin", "function"] = "function"
    name: str
    parameters: str = '{"type": "object", "properties": {}}'
    description: str | None = None
    fallback_content: str | None = None


class SessionBuiltinTool(BaseModel):
    name: Literal["web_search", "hang_up"]
    fallback_content: str | None = None


class SessionSettings(ClientMessage):
    type: Literal["session_settings"]
    audio: AudioConfiguration | None = None
    builtin_tools: list[SessionBuiltinTool] | None = None
    context: Context | None = None
    language_model_api_key: str | None = None
    metadata: dict[str, Any] | None = None
    system_prompt: str | None = None
    tools: list[SessionTool] | None = None
    variables: dict[str, str | int | float | bool] | None = None
    voice_id: str | None = None
    event_limit: Annotated[int, Field(ge=0)] | None = None
    """How many of the resumed chat group's most recent events rebuild the model's context."""

    @field_validator("variables", mode="before")
    @classmethod
    def _variables_as_json(cls, value: Any) -> Any:
        # Hume's phone proxy example passes `session_settings[variables]` as a JSON object string.
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except (ValueError, RecursionError):  # left as a string: validation then refuses it
                return value
            if isinstance(parsed, dict):
                return parsed
        return value


class UserInput(ClientMessage):
    type: Literal["user_input"]
    text: str


class AssistantInput(ClientMessage):
    type: Literal["assistant_input"]
    text: str


class ToolResponse(ClientMessage):
    type: Literal["tool_response"]
    tool_call_id: str
    content: str
    tool_name: str | None = None
    tool_type: Literal["builtin", "function"] | None = None


class ToolError(ClientMessage):
    type: Literal["tool_error"]
    tool_call_id: str
    error: str
    content: str | None = None
    code: str | None = None
    level: Literal["warn"] | None = None
    tool_type: Literal["builtin", "function"] | None = None


class PauseAssistant(ClientMessage):
    type: Literal["pause_assistant_message"]


class ResumeAssistant(ClientMessage):
    type: Literal["resume_assistant_message"]


ControlMessage = Annotated[
    SessionSettings | UserInput | AssistantInput | ToolResponse | ToolError | PauseAssistant | ResumeAssistant,
    Field(discriminator="type"),
]
"""What `POST /v0/evi/chat/{id}/send` accepts, and the chat engine handles: everything but audio
(the EVI transport unwraps `audio_input` into audio bytes, `transports/evi.py`)."""

control_message_adapter: TypeAdapter[ControlMessage] = TypeAdapter(ControlMessage)
