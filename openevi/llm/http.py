"""Shared plumbing for HTTP providers: timeouts, Server-Sent Events, and errors as `LLMError`."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from openevi.llm.base import LLMError

logger = logging.getLogger("openevi.llm.http")

DEFAULT_CONNECT_TIMEOUT = 5.0
# Longest silence tolerated between two chunks of a streamed reply; a hung server fails after this.
DEFAULT_READ_TIMEOUT = 30.0
_MAX_ERROR_BODY = 4096


def make_timeout(connect: float, read: float) -> httpx.Timeout:
    """httpx timeouts where `read` bounds every wait for the next bytes of the stream."""
    return httpx.Timeout(connect=connect, read=read, write=connect, pool=connect)


def make_client(
    *,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for one provider instance (kept open across turns for connection reuse)."""
    return httpx.AsyncClient(timeout=make_timeout(connect_timeout, read_timeout), transport=transport)


@dataclass(frozen=True)
class SSEEvent:
    """One Server-Sent Event: its `event` name (default "message") and joined `data` lines."""

    event: str
    data: str


async def iter_sse(response: httpx.Response) -> AsyncIterator[SSEEvent]:
    """Parse a `text/event-stream` body incrementally (as bytes arrive), per the WHATWG rules."""
    event = ""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:  # a server that closes without the final blank line
        yield SSEEvent(event or "message", "\n".join(data))


def error_message(body: bytes | str) -> str:
    """The provider's own error text from a JSON error body (OpenAI, Anthropic, Google shapes)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text[:_MAX_ERROR_BODY]
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return text.strip() or "no error message"
    if isinstance(parsed, list) and parsed:  # Google sometimes wraps the error in a list
        parsed = parsed[0]
    if isinstance(parsed, Mapping):
        err = parsed.get("error", parsed)
        if isinstance(err, Mapping):
            for key in ("message", "detail", "msg"):
                if isinstance(err.get(key), str):
                    return str(err[key])
        elif isinstance(err, str):
            return err
        if isinstance(parsed.get("detail"), str):
            return str(parsed["detail"])
    return text.strip()


def status_code_slug(status: int) -> str:
    """A stable `LLMError.code` for an HTTP status."""
    if status in (401, 403):
        return "llm_auth"
    if status == 404:
        return "llm_not_found"
    if status == 429:
        return "llm_rate_limited"
    if status >= 500:
        return "llm_unavailable"
    return "llm_bad_request"


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    json_body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST and yield the streaming response; transport failures and non-2xx become `LLMError`.

    Errors raised while the caller reads the body (a read timeout mid-stream) are mapped too.
    """
    try:
        async with client.stream("POST", url, json=json_body, headers=headers, params=params) as response:
            if response.status_code >= 400:
                body = await response.aread()
                message = error_message(body)
                raise LLMError(
                    f"{provider} returned HTTP {response.status_code}: {message}",
                    code=status_code_slug(response.status_code),
                )
            yield response
    except httpx.TimeoutException as exc:
        kind = "connect" if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) else "read"
        raise LLMError(f"{provider} timed out ({kind}) at {_safe_url(url)}", code="llm_timeout") from exc
    except httpx.TransportError as exc:
        raise LLMError(f"{provider} unreachable at {_safe_url(url)}: {exc!r}", code="llm_unreachable") from exc


async def iter_sse_json(response: httpx.Response, provider: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """SSE events decoded as JSON objects; stops at OpenAI's `[DONE]`; bad JSON is an `LLMError`."""
    async for sse in iter_sse(response):
        if sse.data.strip() == "[DONE]":
            return
        try:
            payload = json.loads(sse.data)
        except ValueError as exc:
            raise LLMError(f"{provider} sent a malformed event: {sse.data[:200]!r}", code="llm_bad_response") from exc
        if not isinstance(payload, dict):
            raise LLMError(f"{provider} sent a non-object event: {sse.data[:200]!r}", code="llm_bad_response")
        yield sse.event, payload


def _safe_url(url: str) -> str:
    """The URL without its query string (which may hold a key)."""
    return url.split("?", 1)[0]
