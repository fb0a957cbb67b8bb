"""Google Gemini (`models/{model}:streamGenerateContent?alt=sse`) over httpx."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta, ToolCall
from openevi.llm.http import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, iter_sse_json, make_client, open_stream

logger = logging.getLogger("openevi.llm.google")

# Gemini's `parameters` takes an OpenAPI subset and rejects other JSON Schema keywords with a 400.
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
        "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
        "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)  # fmt: skip


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema trimmed to what Gemini's function declarations accept."""
    if isinstance(schema, list):
        return [gemini_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = gemini_schema(value)
        elif key == "type" and isinstance(value, list):
            # ["string", "null"] → type string, nullable
            kinds = [k for k in value if k != "null"]
            out["type"] = kinds[0] if kinds else "string"
            if "null" in value:
                out["nullable"] = True
        else:
            out[key] = value
    return out


def _function_response(content: str) -> dict[str, Any]:
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    # `response` must be an object; wrap anything else.
    return parsed if isinstance(parsed, dict) else {"content": content}


def gemini_contents(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system instruction, contents): roles user/model, tool results as `functionResponse` parts."""
    system_parts: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}

    def append(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for m in messages:
        if m.role == "system":
            if m.content:
                system_parts.append(m.content)
        elif m.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            for call in m.tool_calls:
                call_names[call.id] = call.name
                try:
                    args = json.loads(call.arguments or "{}")
                except ValueError:
                    args = {"_raw": call.arguments}
                parts.append({"functionCall": {"name": call.name, "args": args}})
            append("model", parts)
        elif m.role == "tool":
            name = m.name or call_names.get(m.tool_call_id or "", "tool")
            append("user", [{"functionResponse": {"name": name, "response": _function_response(m.content)}}])
        elif m.content:
            append("user", [{"text": m.content}])
    return "\n\n".join(system_parts), contents


# Gemini model ids ("gemini-2.0-flash", "gemini-1.5-flash-002", "gemma-3-27b-it").
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class GoogleLLM:
    """Streams replies from Gemini; each `functionCall` part arrives whole and becomes a `ToolCall`."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = "https://generativelanguage.googleapis.com",
        api_version: str = "v1beta",
        name: str = "google",
        temperature: float | None = None,
        max_tokens: int | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.model = model.removeprefix("models/")
        if not _MODEL_NAME.fullmatch(self.model):
            # The name goes into the URL's path: it is a tenant's data, never a path of its own
            # (`../../admin?` used to POST to another endpoint of the Google base URL with the server's key).
            raise LLMError(
                f"Invalid GOOGLE model name {self.model[:100]!r}: letters, digits, '.', '_' and '-' only",
                code="llm_bad_config",
            )
        self.url = f"{base_url.rstrip('/')}/{api_version}/models/{quote(self.model, safe='')}:streamGenerateContent"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._headers = {"x-goog-api-key": api_key} if api_key else {}
        self._client = make_client(connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport)

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        system, contents = gemini_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            config["temperature"] = temperature
        max_tokens = request.max_tokens if request.max_tokens is not None else self.max_tokens
        if max_tokens is not None:
            config["maxOutputTokens"] = max_tokens
        if config:
            body["generationConfig"] = config
        if request.tools:
            body["tools"] = [
                {
                    "functionDeclarations": [
                        {"name": t.name, "description": t.description, "parameters": gemini_schema(t.parameters)}
                        if t.parameters.get("properties")
                        # Gemini refuses an object schema without properties; omit it instead.
                        else {"name": t.name, "description": t.description}
                        for t in request.tools
                    ]
                }
            ]
        return body

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply; a blocked prompt raises `LLMError` with code `llm_blocked`."""
        async with open_stream(
            self._client,
            self.name,
            self.url,
            json_body=self.build_body(request),
            headers=self._headers,
            params={"alt": "sse"},
        ) as response:
            async for _event, chunk in iter_sse_json(response, self.name):
                if "error" in chunk:
                    err = chunk["error"]
                    message = err.get("message") if isinstance(err, Mapping) else str(err)
                    raise LLMError(f"{self.name} failed mid-stream: {message}", code="llm_stream_error")
                feedback = chunk.get("promptFeedback") or {}
                if feedback.get("blockReason"):
                    raise LLMError(f"{self.name} blocked the prompt: {feedback['blockReason']}", code="llm_blocked")
                for candidate in (chunk.get("candidates") or [])[:1]:
                    for part in (candidate.get("content") or {}).get("parts") or []:
                        if part.get("thought"):
                            continue  # thinking summaries are not meant to be spoken
                        if isinstance(part.get("text"), str) and part["text"]:
                            yield TextDelta(part["text"])
                        call = part.get("functionCall")
                        if isinstance(call, Mapping) and call.get("name"):
                            yield ToolCall(
                                id=str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                                name=str(call["name"]),
                                arguments=json.dumps(call.get("args") or {}),
                            )

    async def aclose(self) -> None:
        await self._client.aclose()
