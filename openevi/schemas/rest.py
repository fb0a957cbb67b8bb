"""Request bodies of the REST API, mirroring `docs/spec/evi-rest-openapi.json`.

The spec states most bounds only in prose; they are enforced here (see docs/api.md). Unknown
fields are ignored, as the hosted API did. Responses are built by `openevi.api.views`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]
Description = Annotated[str | None, Field(default=None, max_length=4096)]
PromptText = Annotated[str, Field(max_length=100_000)]

# Functions offered to language models must have names of this shape (OpenAI, Anthropic and
# Google all accept it); refusing others at creation avoids a failure in the middle of a chat.
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

MODEL_PROVIDERS = (
    "GROQ",
    "OPEN_AI",
    "FIREWORKS",
    "ANTHROPIC",
    "CUSTOM_LANGUAGE_MODEL",
    "GOOGLE",
    "HUME_AI",
    "AMAZON_BEDROCK",
    "PERPLEXITY",
    "SAMBANOVA",
    "CEREBRAS",
    "X_AI",
)
WEBHOOK_EVENTS = ("chat_started", "chat_ended", "tool_call")


class Body(BaseModel):
    """Base of request bodies: extra fields ignored, no coercion of strings into numbers."""

    model_config = ConfigDict(extra="ignore", strict=False)


class PromptExpansion(Body):
    enabled: bool = True


class PostedPrompt(Body):
    name: NonEmpty
    text: PromptText
    version_description: Description
    prompt_expansion: PromptExpansion | None = None


class PostedPromptVersion(Body):
    text: PromptText
    version_description: Description
    prompt_expansion: PromptExpansion | None = None


class PostedName(Body):
    name: NonEmpty


class PostedVersionDescription(Body):
    version_description: Description


def check_tool_parameters(value: str) -> str:
    """Tool parameters are a JSON Schema object, given as a string."""
    too_deep = ValueError("parameters is nested too deeply")
    try:
        schema = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"parameters must be a JSON string: {exc}") from exc
    except RecursionError:
        raise too_deep from None
    if not isinstance(schema, dict):
        raise ValueError("parameters must be a JSON Schema object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from exc
    except RecursionError:
        raise too_deep from None
    if schema.get("type", "object") != "object":
        raise ValueError('parameters must describe an object ("type": "object")')
    return value


class PostedToolVersion(Body):
    parameters: Annotated[str, Field(max_length=100_000)]
    description: Description
    fallback_content: Description
    version_description: Description

    _check_parameters = field_validator("parameters")(check_tool_parameters)


class PostedTool(PostedToolVersion):
    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]


class PostedToolName(Body):
    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]


# --- configs -------------------------------------------------------------------------------


class PostedConfigPrompt(Body):
    id: str | None = None
    version: Annotated[int | None, Field(ge=0)] = None
    text: Annotated[str | None, Field(max_length=100_000)] = None
    prompt_expansion: PromptExpansion | None = None

    @model_validator(mode="after")
    def _id_or_text(self) -> PostedConfigPrompt:
        if self.id is None and self.text is None:
            raise ValueError("prompt needs either an id (with an optional version) or a text")
        if self.id is not None and self.text is not None:
            raise ValueError("prompt takes an id or a text, not both")
        return self


class VoiceRef(Body):
    id: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    name: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    provider: Literal["HUME_AI", "CUSTOM_VOICE"] | None = None

    @model_validator(mode="after")
    def _id_or_name(self) -> VoiceRef:
        if self.id is None and self.name is None:
            raise ValueError("voice needs an id or a name")
        return self


class LanguageModel(Body):
    model_provider: Literal[MODEL_PROVIDERS] | None = None  # type: ignore[valid-type]
    # A superset of the spec's enum: OpenAI-compatible servers and custom language models
    # (whose resource is a URL) need free-form names.
    model_resource: Annotated[str | None, Field(min_length=1, max_length=2048)] = None
    temperature: Annotated[float | None, Field(ge=0.0, le=1.0)] = None


class EllmModel(Body):
    allow_short_responses: bool | None = None


class EventMessage(Body):
    enabled: bool
    text: Annotated[str | None, Field(max_length=10_000)] = None


class EventMessages(Body):
    on_new_chat: EventMessage | None = None
    on_inactivity_timeout: EventMessage | None = None
    on_max_duration_timeout: EventMessage | None = None


class TimeoutSpec(Body):
    enabled: bool
    # The spec caps chats at 30 minutes and states no minimum; short values make timeouts testable.
    duration_secs: Annotated[int | None, Field(ge=1, le=1800)] = None


class Timeouts(Body):
    inactivity: TimeoutSpec | None = None
    max_duration: TimeoutSpec | None = None


class Nudges(Body):
    enabled: bool | None = None
    interval_secs: Annotated[int | None, Field(ge=1, le=1800)] = None


class Interruption(Body):
    min_interruption_ms: Annotated[int | None, Field(ge=50, le=2000)] = None


class TurnDetection(Body):
    end_of_turn_silence_ms: Annotated[int | None, Field(ge=500, le=3000)] = None
    prefix_padding_ms: Annotated[int | None, Field(ge=0, le=1000)] = None
    speech_detection_threshold: Annotated[float | None, Field(ge=0.0, le=1.0)] = None


class ToolRef(Body):
    id: str
    version: Annotated[int | None, Field(ge=0)] = None


class BuiltinTool(Body):
    name: Literal["web_search", "hang_up"]
    fallback_content: Description


class Webhook(Body):
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[Literal[WEBHOOK_EVENTS]], Field(min_length=1)]  # type: ignore[valid-type]


class PostedConfigVersion(Body):
    evi_version: Literal["3", "4-mini"]
    version_description: Description
    prompt: PostedConfigPrompt | None = None
    voice: VoiceRef | None = None
    language_model: LanguageModel | None = None
    ellm_model: EllmModel | None = None
    tools: Annotated[list[ToolRef] | None, Field(max_length=100)] = None
    builtin_tools: Annotated[list[BuiltinTool] | None, Field(max_length=10)] = None
    event_messages: EventMessages | None = None
    nudges: Nudges | None = None
    timeouts: Timeouts | None = None
    interruption: Interruption | None = None
    turn_detection: TurnDetection | None = None
    webhooks: Annotated[list[Webhook] | None, Field(max_length=20)] = None

    @field_validator("evi_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # The SDK types evi_version as str; accept the bare number 3 that hand-written clients send.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PostedConfig(PostedConfigVersion):
    name: NonEmpty
