"""The language-model contract: stream text and tool calls for a conversation.

Providers live one per module in this package and are chosen by `openevi.llm.registry`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A complete function call requested by the model (arguments as a JSON string)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    """One conversation turn in provider-neutral form (OpenAI-like)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role "tool": which call this answers
    name: str | None = None  # for role "tool": the function's name
    # For role "user": the turn's expression measures as EVI names them ("Sadness", "Surprise
    # (negative)"); custom language models receive them as `models.prosody.scores`.
    emotions: Mapping[str, float] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class ToolSpec:
    """A function offered to the model."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the assistant's reply, in order."""

    text: str


LLMEvent = TextDelta | ToolCall


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider needs for one reply."""

    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    # Extra context some providers forward (custom language models get these).
    custom_session_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class LLMError(Exception):
    """A provider failed (network, HTTP status, bad answer); `code` is a stable slug."""

    def __init__(self, message: str, *, code: str = "llm_error") -> None:
        super().__init__(message)
        self.code = code


class LanguageModel(Protocol):
    """A streaming chat model. `stream` yields text deltas and complete tool calls."""

    name: str

    def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply; raise LLMError on failure. Cancelling the iteration stops generation."""
        ...

    async def aclose(self) -> None:
        """Release connections or model handles."""
        ...
