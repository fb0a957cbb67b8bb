"""A scripted OpenAI-compatible language model server for tests.

It runs on 127.0.0.1 (random port) in a background thread, streams deterministic replies chosen by
rules, and records every request so tests can assert what the engine sent.

    llm = ScriptedLLM().start()             # or: with ScriptedLLM() as llm:
    llm.script(
        Reply("It is sunny.", when="weather"),           # last user message contains "weather"
        CallTool("get_time", {"tz": "UTC"}, when="time"),
        Fail(500, "boom", when="explode"),
        Hang(when="stall", after="Let me think"),          # streams "Let me think", then stalls
    )
    llm.default = Reply("OK.")              # when no rule matches (this is the default)
    base_url = llm.base_url                 # "http://127.0.0.1:PORT/v1" for OPENEVI_OPENAI_BASE_URL
    ...
    llm.requests[-1].last_user_message      # what the engine sent
    llm.stop()

Endpoints: `POST /v1/chat/completions` and `POST /chat/completions` (OpenAI format, `stream`
true or false; the second is a custom-language-model SSE URL), and `WS /ws` (EVI's WebSocket custom
language model: `assistant_input` messages then `assistant_end`). Rules are tried in order; the
first whose `when` matches wins; a rule with `once=True` is used up after one match.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.support.asgi_stub import AsgiStub

__all__ = ["CallTool", "Fail", "Hang", "RecordedRequest", "Reply", "Rule", "ScriptedLLM"]

Matcher = str | Callable[["RecordedRequest"], bool] | None


@dataclass(kw_only=True)
class _Base:
    """`when`: a substring of the last user message (case-insensitive) or a predicate; None matches all."""

    when: Matcher = None
    once: bool = False

    def matches(self, request: RecordedRequest) -> bool:
        if self.when is None:
            return True
        if isinstance(self.when, str):
            return self.when.lower() in (request.last_user_message or "").lower()
        return self.when(request)


@dataclass
class Reply(_Base):
    """Stream `text` in chunks of `chunk_words` words, waiting `delay` seconds before each chunk."""

    text: str
    chunk_words: int = 1
    delay: float = 0.0


@dataclass
class CallTool(_Base):
    """Ask for a function call (after some `text`, if given); the arguments stream in 8-char pieces."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    call_id: str = "call_scripted_1"
    text: str = ""


@dataclass
class Fail(_Base):
    """Answer with an HTTP error in OpenAI's error shape (an `error` message on the WebSocket)."""

    status: int = 500
    message: str = "scripted failure"


@dataclass
class Hang(_Base):
    """Stream `after` (may be empty: then no response at all), then stall until the server stops."""

    after: str = ""


Rule = Reply | CallTool | Fail | Hang


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent (the WebSocket form is unwrapped to `{role, content}`)."""
        raw = self.body.get("messages") or []
        return [m["message"] if isinstance(m, dict) and "message" in m else m for m in raw]

    @property
    def last_user_message(self) -> str | None:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                content = m.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return None

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n"


def _words(text: str, per_chunk: int) -> list[str]:
    words = text.split(" ")
    pieces = [" ".join(words[i : i + per_chunk]) for i in range(0, len(words), max(1, per_chunk))]
    # Keep the spaces between chunks so the joined deltas equal `text`.
    return [p if i == len(pieces) - 1 else p + " " for i, p in enumerate(pieces)]


def _arguments(rule: CallTool) -> str:
    return rule.arguments if isinstance(rule.arguments, str) else json.dumps(rule.arguments)


class ScriptedLLM(AsgiStub):
    """The server; see the module docstring. Thread-safe: script and read from the test thread."""

    name = "scripted LLM server"

    def __init__(self, *rules: Rule, default: Rule | None = None) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._rules: list[Rule] = list(rules)
        self.default: Rule = default or Reply("OK.")
        self._requests: list[RecordedRequest] = []

    # --- scripting -------------------------------------------------------------------------
    def script(self, *rules: Rule) -> ScriptedLLM:
        """Replace the rules."""
        with self._lock:
            self._rules = list(rules)
        return self

    def add(self, *rules: Rule) -> ScriptedLLM:
        """Append rules (tried after the existing ones)."""
        with self._lock:
            self._rules.extend(rules)
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (`…/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completions_url(self) -> str:
        """A full chat-completions URL (for CUSTOM_LANGUAGE_MODEL over SSE)."""
        return f"http://127.0.0.1:{self.port}/chat/completions"

    @property
    def ws_url(self) -> str:
        """The WebSocket custom-language-model URL."""
        return f"ws://127.0.0.1:{self.port}/ws"

    # --- serving ---------------------------------------------------------------------------
    def _record_and_pick(self, request: RecordedRequest) -> Rule:
        with self._lock:
            self._requests.append(request)
            for i, rule in enumerate(self._rules):
                if rule.matches(request):
                    if rule.once:
                        del self._rules[i]
                    return rule
            return self.default

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/chat/completions", self._completions, methods=["POST"]),
                WebSocketRoute("/ws", self._websocket),
            ]
        )

    async def _completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON", "type": "invalid_request_error"}}, 400)
        recorded = RecordedRequest(
            path=request.url.path, query=dict(request.query_params), headers=dict(request.headers), body=body
        )
        rule = self._record_and_pick(recorded)
        model = str(body.get("model") or "scripted")
        if isinstance(rule, Fail):
            return JSONResponse({"error": {"message": rule.message, "type": "scripted_error"}}, rule.status)
        if isinstance(rule, Hang) and not rule.after:
            await self._hang()  # never answer (until the server stops)
            return Response(status_code=503)
        if not body.get("stream"):
            return JSONResponse(self._whole_reply(rule, model))
        return StreamingResponse(self._stream(rule, model), media_type="text/event-stream")

    def _whole_reply(self, rule: Rule, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": getattr(rule, "text", "") or None}
        finish = "stop"
        if isinstance(rule, CallTool):
            finish = "tool_calls"
            message["tool_calls"] = [
                {"id": rule.call_id, "type": "function", "function": {"name": rule.name, "arguments": _arguments(rule)}}
            ]
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }

    async def _stream(self, rule: Rule, model: str) -> AsyncIterator[str]:
        yield _chunk(model, {"role": "assistant", "content": ""})
        if isinstance(rule, Reply):
            for piece in _words(rule.text, rule.chunk_words):
                if rule.delay:
                    await asyncio.sleep(rule.delay)
                yield _chunk(model, {"content": piece})
            yield _chunk(model, {}, "stop")
        elif isinstance(rule, CallTool):
            if rule.text:
                yield _chunk(model, {"content": rule.text})
            head = {
                "index": 0,
                "id": rule.call_id,
                "type": "function",
                "function": {"name": rule.name, "arguments": ""},
            }
            yield _chunk(model, {"tool_calls": [head]})
            arguments = _arguments(rule)
            for i in range(0, len(arguments), 8):
                yield _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 8]}}]})
            yield _chunk(model, {}, "tool_calls")
        elif isinstance(rule, Hang):
            yield _chunk(model, {"content": rule.after})
            await self._hang()
            return
        yield "data: [DONE]\n\n"

    async def _websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                body = json.loads(await websocket.receive_text())
                recorded = RecordedRequest(path="/ws", query=dict(websocket.query_params), headers={}, body=body)
                rule = self._record_and_pick(recorded)
                if isinstance(rule, Fail):
                    await websocket.send_json({"type": "error", "code": str(rule.status), "message": rule.message})
                    continue
                if isinstance(rule, Hang):
                    if rule.after:
                        await websocket.send_json({"type": "assistant_input", "text": rule.after})
                    await self._hang()
                    return
                text = rule.text if isinstance(rule, Reply | CallTool) else ""
                pieces = _words(text, rule.chunk_words) if isinstance(rule, Reply) else [text]
                for piece in pieces:
                    if piece:
                        await websocket.send_json({"type": "assistant_input", "text": piece})
                await websocket.send_json({"type": "assistant_end"})
        except WebSocketDisconnect:
            return
