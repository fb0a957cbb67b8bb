"""Anthropic Messages API (`POST /v1/messages`, `stream: true`) over httpx."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta, ToolCall, ToolSpec
from openevi.llm.http import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, iter_sse_json, make_client, open_stream

logger = logging.getLogger("openevi.llm.anthropic")

ANTHROPIC_VERSION = "2023-06-01"
# The API requires max_tokens; a voice reply never needs more.
DEFAULT_MAX_TOKENS = 1024


def _parse_arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {"_raw": arguments}


def anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, messages) in Anthropic's shape: tool results become `tool_result` blocks
    in a user turn, and consecutive turns of one role are merged (the API wants them alternating)."""
    system_parts: list[str] = []
    out: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            if m.content:
                system_parts.append(m.content)
        elif m.role == "tool":
            append(
                "user",
                [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content or "(empty)"}],
            )
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _parse_arguments(c.arguments)}
                for c in m.tool_calls
            ]
            append("assistant", blocks)
        elif m.content:  # the API refuses empty text blocks
            append("user", [{"type": "text", "text": m.content}])
    if out and out[0]["role"] != "user":
        # EVI chats can open with the assistant's greeting; the API wants a user turn first.
        out.insert(0, {"role": "user", "content": [{"type": "text", "text": "(The conversation begins.)"}]})
    return "\n\n".join(system_parts), out


def anthropic_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters or {"type": "object"}}
        for t in tools
    ]


class AnthropicLLM:
    """Streams replies from Claude models; `input_json_delta` pieces are joined into `ToolCall`s."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = "https://api.anthropic.com",
        name: str = "anthropic",
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._headers = {"anthropic-version": ANTHROPIC_VERSION, "accept": "text/event-stream"}
        if api_key:
            self._headers["x-api-key"] = api_key
        self._client = make_client(connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport)

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        system, messages = anthropic_messages(request.messages)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.max_tokens,
            "stream": True,
        }
        if system:
            body["system"] = system
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if request.tools:
            body["tools"] = anthropic_tools(request.tools)
        return body

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply; a tool call is emitted when its content block stops."""
        # Open tool_use blocks by content-block index: (id, name, json pieces).
        tool_blocks: dict[int, tuple[str, str, list[str]]] = {}
        async with open_stream(
            self._client, self.name, self.url, json_body=self.build_body(request), headers=self._headers
        ) as response:
            async for event, data in iter_sse_json(response, self.name):
                kind = data.get("type", event)
                if kind == "content_block_start":
                    block = data.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        pieces: list[str] = []
                        if block.get("input"):  # normally {} and streamed as deltas
                            pieces.append(json.dumps(block["input"]))
                        tool_blocks[int(data.get("index", 0))] = (
                            str(block.get("id", "")),
                            str(block.get("name", "")),
                            pieces,
                        )
                    elif block.get("type") == "text" and block.get("text"):
                        yield TextDelta(block["text"])
                elif kind == "content_block_delta":
                    delta: Mapping[str, Any] = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield TextDelta(str(delta["text"]))
                    elif delta.get("type") == "input_json_delta":
                        open_block = tool_blocks.get(int(data.get("index", 0)))
                        if open_block is not None:
                            open_block[2].append(str(delta.get("partial_json", "")))
                elif kind == "content_block_stop":
                    done = tool_blocks.pop(int(data.get("index", 0)), None)
                    if done is not None:
                        yield ToolCall(id=done[0], name=done[1], arguments="".join(done[2]) or "{}")
                elif kind == "error":
                    err = data.get("error") or {}
                    raise LLMError(
                        f"{self.name} failed mid-stream: {err.get('type', 'error')}: {err.get('message', '')}",
                        code="llm_stream_error",
                    )
                elif kind == "message_stop":
                    break
        if tool_blocks:
            # Arguments of a block cut off before content_block_stop may be truncated JSON.
            raise LLMError(f"{self.name} stream ended inside a tool call", code="llm_bad_response")

    async def aclose(self) -> None:
        await self._client.aclose()
