"""EVI's CUSTOM_LANGUAGE_MODEL: the user's own endpoint writes the assistant's words.

Two forms, chosen by the URL scheme of `model_resource`:

- `http(s)://…/chat/completions` (hosted EVI's recommended form): POST an OpenAI chat-completions
  request (`messages` incl. system, `stream: true`, `model` when configured) with the
  `custom_session_id` as a query parameter, and read OpenAI-format SSE chunks. A user message
  with expression measures also carries `"models": {"prosody": {"scores": {…}}}`, as EVI sends it.
- `ws(s)://…` (the older form): send `{"messages": [{"type", "message": {"role", "content"},
  "models": {"prosody": {"scores"}}}], "custom_session_id"}` and read `{"type": "assistant_input",
  "text"}` messages until `{"type": "assistant_end"}`. One socket per chat, reopened after a drop.

Payloads are bounded: only the last `max_history_messages` turns are sent, and older turns are
dropped until the JSON fits `max_payload_bytes` (a whole-history payload once broke a proxy's
128 KB frame limit: hume-react-sdk#300). System messages are always kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from openevi import tracing
from openevi.llm.base import GenerationRequest, LLMError, LLMEvent, Message, TextDelta
from openevi.llm.http import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, status_code_slug
from openevi.llm.openai_compat import OpenAICompatibleLLM, openai_messages, stream_openai_chunks
from openevi.net.clients import GuardedTransport, connect_websocket, short_reason
from openevi.net.outbound import OutboundPolicy, OutboundRefused, parse_ip_literal

logger = logging.getLogger("openevi.llm.custom")

DEFAULT_MAX_HISTORY_MESSAGES = 50
DEFAULT_MAX_PAYLOAD_BYTES = 100_000  # under the 128 KB frame limit common in proxies


def window_messages(
    messages: Sequence[Message],
    *,
    max_messages: int,
    max_bytes: int,
    encode: Callable[[Sequence[Message]], bytes],
) -> list[Message]:
    """The most recent messages (system messages always kept) whose encoding fits `max_bytes`.

    Raises `LLMError` when even the system messages plus the last turn do not fit.
    """
    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"][-max_messages:] if max_messages > 0 else []
    while True:
        kept = system + turns
        if len(encode(kept)) <= max_bytes:
            return kept
        if len(turns) <= 1:
            raise LLMError(
                f"custom language model payload exceeds {max_bytes} bytes even with one turn",
                code="llm_payload_too_large",
            )
        turns = turns[1:]
        # A tool result without its call confuses servers; drop orphans at the front.
        while len(turns) > 1 and turns[0].role == "tool":
            turns = turns[1:]


class CustomSSELanguageModel(OpenAICompatibleLLM):
    """A user's `/chat/completions` endpoint speaking OpenAI's streaming format."""

    def __init__(
        self,
        *,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_history_messages: int = DEFAULT_MAX_HISTORY_MESSAGES,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        send_tools: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        # `outbound`: the policy for this tenant URL (the registry always passes one); None trusts it.
        if transport is None and outbound is not None:
            transport = GuardedTransport(outbound)
        super().__init__(
            model=model,
            base_url=url,
            api_key=api_key,
            name="custom_language_model",
            temperature=temperature,
            chat_path="",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            transport=transport,
        )
        self.max_history_messages = max_history_messages
        self.max_payload_bytes = max_payload_bytes
        # Hosted EVI offers no tools to custom models; opt in for endpoints that handle them.
        self.send_tools = send_tools

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        def encode(messages: Sequence[Message]) -> bytes:
            return json.dumps(_with_prosody(messages, openai_messages(messages))).encode()

        messages = window_messages(
            request.messages,
            max_messages=self.max_history_messages,
            max_bytes=self.max_payload_bytes,
            encode=encode,
        )
        windowed = GenerationRequest(
            messages=messages,
            tools=request.tools if self.send_tools else (),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            custom_session_id=request.custom_session_id,
            metadata=request.metadata,
        )
        body = super().build_body(windowed)
        body["messages"] = _with_prosody(messages, body["messages"])
        return body

    def build_params(self, request: GenerationRequest) -> dict[str, str] | None:
        # Hosted EVI passes the session id as a query parameter (hume-api-examples evi-python-clm-sse).
        return {"custom_session_id": request.custom_session_id} if request.custom_session_id else None

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Stream the reply. Errors tell the tenant a status and a short reason, never the endpoint's body."""
        where = _safe_url(self.url)
        try:
            body, params = self.build_body(request), self.build_params(request)
            headers = tracing.inject(dict(self._headers))  # the user's server sees openevi in its trace
            async with self._client.stream("POST", self.url, json=body, headers=headers, params=params) as response:
                if response.status_code >= 400:
                    raise await _status_error(response)
                if not 200 <= response.status_code < 300:  # a redirect is not an answer (never followed)
                    raise LLMError(
                        f"custom language model answered HTTP {response.status_code} instead of a stream "
                        "(redirects are not followed: set model_resource to the final URL)",
                        code="llm_bad_response",
                    )
                try:
                    async for event in stream_openai_chunks(response, "custom language model"):
                        yield event
                except LLMError as exc:
                    if exc.code == "llm_bad_response":
                        raise LLMError("custom language model sent a malformed event stream", code=exc.code) from exc
                    raise LLMError(short_reason(str(exc)), code=exc.code) from exc
        except OutboundRefused as exc:
            raise _refused(exc, where) from exc
        except httpx.InvalidURL as exc:
            raise LLMError(f"custom language model URL is not valid: {exc}", code="llm_bad_config") from exc
        except httpx.TimeoutException as exc:
            kind = "connect" if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) else "read"
            raise LLMError(f"custom language model timed out ({kind}) at {where}", code="llm_timeout") from exc
        except httpx.TransportError as exc:
            raise _unreachable(where) from exc


_ERROR_BODY_LIMIT = 4096


def _unreachable(where: str) -> LLMError:
    return LLMError(f"custom language model unreachable at {where}", code="llm_unreachable")


def _refused(exc: OutboundRefused, where: str) -> LLMError:
    """What a tenant learns of a refusal. For a host name, exactly what a name that does not resolve
    (or does not answer) gives: otherwise refusals would tell which internal names exist."""
    if parse_ip_literal(exc.host) is None:
        logger.info("custom language model URL refused: %s", exc)  # the operator sees why
        return _unreachable(where)
    return LLMError(f"custom language model URL not allowed: {exc.tenant_message}", code="llm_url_refused")


async def _status_error(response: httpx.Response) -> LLMError:
    """The error for a non-2xx answer: status, phrase, and a provider-style JSON message if there is one."""
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    status = response.status_code
    text = f"custom language model returned HTTP {status} {response.reason_phrase}".rstrip()
    reason = _provider_reason(body[:_ERROR_BODY_LIMIT])
    return LLMError(f"{text}: {reason}" if reason else text, code=status_code_slug(status))


def _provider_reason(body: bytes) -> str | None:
    """`error.message` (or `message`/`detail`) of an OpenAI-style JSON error body, shortened; else None.

    Other bodies (HTML pages, another service's JSON) are not shown: they could be anything behind the URL.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error", parsed)
    if isinstance(error, str):
        return short_reason(error)
    if isinstance(error, dict):
        for key in ("message", "detail"):
            if isinstance(error.get(key), str):
                return short_reason(error[key])
    return None


def _safe_url(url: str) -> str:
    """The URL without query string or credentials (either may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


_WS_MESSAGE_TYPES = {"user": "user_message", "assistant": "assistant_message", "system": "system_prompt"}


def _with_prosody(messages: Sequence[Message], encoded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-format messages (one per Message) with each measured user turn's scores added as
    EVI adds them, `models.prosody.scores`; endpoints that forward to OpenAI keep role and content."""
    return [
        {**out, "models": {"prosody": {"scores": dict(m.emotions)}}} if m.role == "user" and m.emotions else out
        for m, out in zip(messages, encoded, strict=True)
    ]


def _ws_message(m: Message, prosody: Mapping[str, float] | None) -> dict[str, Any]:
    scores = prosody if prosody is not None else m.emotions
    return {
        "type": _WS_MESSAGE_TYPES.get(m.role, f"{m.role}_message"),
        "message": {"role": m.role, "content": m.content},
        "models": {"prosody": {"scores": dict(scores or {})}},
    }


class CustomWebSocketLanguageModel:
    """A user's WebSocket endpoint (EVI's older custom language model protocol).

    Each message's `models.prosody.scores` are its `Message.emotions` (the user's expression
    measures); `request.metadata["prosody"]`, if given, is a list aligned with `request.messages` of
    `{emotion: score}` dicts (or None) that overrides them.
    """

    def __init__(
        self,
        *,
        url: str,
        max_history_messages: int = DEFAULT_MAX_HISTORY_MESSAGES,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_message_bytes: int = 1_048_576,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.name = "custom_language_model"
        self.url = url
        self.outbound = outbound  # None trusts the URL; the registry passes the server's policy
        self.max_history_messages = max_history_messages
        self.max_payload_bytes = max_payload_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_message_bytes = max_message_bytes
        self._ws: ClientConnection | None = None
        self._lock = asyncio.Lock()  # one reply at a time on the shared socket

    def build_payload(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON sent for one turn (history windowed to fit `max_payload_bytes`)."""
        prosody_list = request.metadata.get("prosody")
        prosody_by_id: dict[int, dict[str, float] | None] = {}
        if isinstance(prosody_list, list):
            prosody_by_id = {id(m): p for m, p in zip(request.messages, prosody_list, strict=False)}
        visible = [m for m in request.messages if m.role in ("user", "assistant", "system")]

        def wrap(messages: Sequence[Message]) -> dict[str, Any]:
            payload: dict[str, Any] = {"messages": [_ws_message(m, prosody_by_id.get(id(m))) for m in messages]}
            if request.custom_session_id:
                payload["custom_session_id"] = request.custom_session_id
            return payload

        messages = window_messages(
            visible,
            max_messages=self.max_history_messages,
            max_bytes=self.max_payload_bytes,
            encode=lambda ms: json.dumps(wrap(ms)).encode(),
        )
        return wrap(messages)

    async def _connection(self) -> ClientConnection:
        if self._ws is None:
            try:
                options: dict[str, Any] = {
                    "max_size": self.max_message_bytes,
                    "open_timeout": self.connect_timeout,
                    "additional_headers": tracing.inject({}),
                }
                opening = (
                    connect(self.url, **options)
                    if self.outbound is None
                    else connect_websocket(self.url, self.outbound, **options)
                )
                self._ws = await asyncio.wait_for(opening, timeout=self.connect_timeout + 1)
            except OutboundRefused as exc:
                raise _refused(exc, _safe_url(self.url)) from exc
            except (OSError, TimeoutError) as exc:  # a name that does not resolve reads like a refused one
                logger.info("custom language model at %s: %r", _safe_url(self.url), exc)
                raise _unreachable(_safe_url(self.url)) from exc
            # ValueError: websockets refuses a cross-origin redirect once the checked address is pinned.
            except (ValueError, WebSocketException) as exc:
                raise LLMError(
                    f"custom language model unreachable at {_safe_url(self.url)}: {short_reason(repr(exc))}",
                    code="llm_unreachable",
                ) from exc
        return self._ws

    async def _drop_connection(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            # Closing can wait on a dead peer; bound it.
            with contextlib.suppress(TimeoutError, WebSocketException, OSError):
                await asyncio.wait_for(ws.close(), timeout=1.0)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
        """Send the turn and stream `assistant_input` texts until `assistant_end`."""
        payload = json.dumps(self.build_payload(request))
        async with self._lock:
            finished = False
            try:
                for attempt in (1, 2):
                    ws = await self._connection()
                    try:
                        await ws.send(payload)
                        break
                    except WebSocketException as exc:
                        # A socket closed since the last turn: reconnect once.
                        await self._drop_connection()
                        if attempt == 2:
                            raise LLMError(
                                f"custom language model send failed: {exc!r}", code="llm_unreachable"
                            ) from exc
                while True:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=self.read_timeout)
                    except TimeoutError as exc:
                        raise LLMError(
                            f"custom language model sent nothing for {self.read_timeout:g} s", code="llm_timeout"
                        ) from exc
                    except WebSocketException as exc:
                        raise LLMError(
                            f"custom language model closed the socket: {exc!r}", code="llm_unreachable"
                        ) from exc
                    message = self._parse(raw)
                    kind = message.get("type")
                    if kind == "assistant_input":
                        text = message.get("text")
                        if isinstance(text, str) and text:
                            yield TextDelta(text)
                    elif kind == "assistant_end":
                        finished = True
                        return
                    elif kind == "error":
                        raise LLMError(
                            "custom language model error: "
                            + short_reason(str(message.get("message") or message.get("code") or "no reason given")),
                            code="llm_stream_error",
                        )
                    else:
                        logger.debug("ignoring custom language model message of type %r", kind)
            finally:
                if not finished:
                    # The rest of an abandoned reply would leak into the next turn: start afresh.
                    await self._drop_connection()

    @staticmethod
    def _parse(raw: str | bytes) -> dict[str, Any]:
        try:
            message = json.loads(raw)
        except ValueError as exc:
            raise LLMError("custom language model sent a message that is not JSON", code="llm_bad_response") from exc
        if not isinstance(message, dict):
            raise LLMError("custom language model sent a non-object message", code="llm_bad_response")
        return message

    async def aclose(self) -> None:
        await self._drop_connection()


def create_custom_language_model(
    url: str,
    *,
    model: str | None = None,
    api_key: str | None = None,
    temperature: float | None = None,
    **options: Any,
) -> CustomSSELanguageModel | CustomWebSocketLanguageModel:
    """The right client for `url`'s scheme; anything but http(s)/ws(s) is an `LLMError`."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return CustomSSELanguageModel(url=url, model=model, api_key=api_key, temperature=temperature, **options)
    if scheme in ("ws", "wss"):
        return CustomWebSocketLanguageModel(url=url, **options)
    raise LLMError(
        f"custom language model URL must start with http(s):// or ws(s)://, got {url!r}", code="llm_bad_config"
    )
