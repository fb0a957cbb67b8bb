"""OpenAI `/chat/completions` streaming, for OpenAI and every server that speaks its dialect.

Serves OPEN_AI, GROQ, FIREWORKS, CEREBRAS, SAMBANOVA, X_AI, PERPLEXITY (see `openevi.llm.registry`
for their base URLs) and self-hosted vLLM, Ollama (`http://localhost:11434/v1`) or llama.cpp's
`llama-server` (`http://localhost:8080/v1`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    iter_sse_json,
    make_client,
    open_stream,
)

logger = logging.getLogger("openevi.llm.openai_compat")


def openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Provider-neutral messages in OpenAI's chat format."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    # OpenAI wants null, not "", beside tool calls.
                    "content": m.content or None,
                    "tool_calls": [
                        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs as OpenAI function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object"},
            },
        }
        for t in tools
    ]


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Joins OpenAI's streamed `tool_calls` deltas (keyed by `index`) into complete calls."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, deltas: Sequence[Mapping[str, Any]]) -> None:
        for position, delta in enumerate(deltas):
            index = delta.get("index", position)
            call = self._calls.setdefault(int(index), _PartialCall())
            if delta.get("id"):
                call.id = str(delta["id"])
            function = delta.get("function") or {}
            if function.get("name"):
                # Some servers repeat the name in every delta; others send it once.
                name = str(function["name"])
                call.name = name if name.startswith(call.name) else call.name + name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call.arguments.append(arguments)
            elif isinstance(arguments, Mapping):  # a few servers send parsed arguments
                call.arguments.append(json.dumps(arguments))

    def drain(self) -> list[ToolCall]:
        """Complete calls in index order; calls without a name are dropped (logged)."""
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                logger.warning("dropping a streamed tool call without a name (index %d)", index)
                continue
            arguments = "".join(partial.arguments) or "{}"
            calls.append(
                ToolCall(id=partial.id or f"call_{uuid.uuid4().hex[:24]}", name=partial.name, arguments=arguments)
            )
        self._calls.clear()
        return calls


async def stream_openai_chunks(response: httpx.Response, provider: str) -> AsyncIterator[LLMEvent]:
    """Turn an OpenAI chunk stream into text deltas and, at the end of the choice, tool calls."""
    calls = ToolCallAccumulator()
    async for _event, chunk in iter_sse_json(response, provider):
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            message = err.get("message") if isinstance(err, Mapping) else str(err)
            raise LLMError(f"{provider} failed mid-stream: {message}", code="llm_stream_error")
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore stray choices
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                yield TextDelta(content)
            if delta.get("tool_calls"):
                calls.add(delta["tool_calls"])
            if choice.get("finish_reason"):
                for call in calls.drain():
                    yield call
    for call in calls.drain():  # servers that end without a finish_reason
        yield call


class OpenAICompatibleLLM:
    """Streams chat completions from an OpenAI-compatible server.

    `read_timeout` bounds each silence in the stream (so a hung server fails after that many seconds);
    `connect_timeout` bounds connecting. `chat_path` is appended to `base_url` (use "" when the URL
    already names the endpoint).
    """

    def __init__(
        self,
        *,
        model: str | None,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        name: str = "openai",
        temperature: float | None = None,
        max_tokens: int | None = None,
        chat_path: str = "/chat/completions",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.url = base_url.rstrip("/") + chat_path
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._headers = {"Accept": "text/event-stream", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._extra_body = dict(extra_body or {})
        self._client = make_client(connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport)

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for one request."""
        body: dict[str, Any] = {"messages": openai_messages(request.messages), "stream": True}
        if self.model:
            body["model"] = self.model
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        max_tokens = request.max_tokens if request.max_tokens is not None else self.max_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if request.tools:
            body["tools"] = openai_tools(request.tools)
        body.update(self._extra_body)
        return body

    def build_params(self, request: GenerationRequest) -> dict[str, str] | None:
        """Query parameters for one request (none for plain OpenAI)."""
        return None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply; HTTP, timeout and protocol failures raise `LLMError`."""
        async with open_stream(
            self._client,
            self.name,
            self.url,
            json_body=self.build_body(request),
            headers=self._headers,
            params=self.build_params(request),
        ) as response:
            async for event in stream_openai_chunks(response, self.name):
                yield event

    async def aclose(self) -> None:
        await self._client.aclose()
