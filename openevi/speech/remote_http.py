"""HTTP plumbing shared by the remote speech providers (OpenAI-compatible `/v1/audio/*` servers).

Their base URLs are operator settings, so they are trusted and not run through the tenant outbound
policy. Every failure becomes one readable sentence naming the server, the URL and the cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["audio_url", "auth_headers", "describe_failure", "error_text", "make_client"]

_MAX_ERROR_BODY = 2048


def audio_url(base_url: str, endpoint: str) -> str:
    """`{base}/v1/audio/{endpoint}`; a base that already ends in `/v1` (as OpenAI's does) is used as is."""
    base = base_url.strip().rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/audio/{endpoint}"


def make_client(
    *, connect_timeout: float, read_timeout: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client kept for the provider's lifetime (connection reuse); `read_timeout` bounds every silence."""
    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
    return httpx.AsyncClient(timeout=timeout, transport=transport)


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The bearer header OpenAI and its imitators expect (none without a key: local servers)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def error_text(body: bytes) -> str:
    """The server's own error message from an OpenAI (`error.message`) or FastAPI (`detail`) body."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return text.strip() or "no error message"
    found = _message_in(parsed)
    return found if found else text.strip()


def _message_in(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:  # FastAPI validation errors: [{"loc":…, "msg":…}, …]
        return _message_in(value[0])
    if isinstance(value, Mapping):
        for key in ("message", "msg"):
            if isinstance(value.get(key), str):
                return str(value[key])
        for key in ("error", "detail"):  # Kokoro-FastAPI nests {"detail": {"error":…, "message":…}}
            if key in value and (found := _message_in(value[key])):
                return found
    return None


def describe_failure(what: str, url: str, exc: httpx.HTTPError, timeouts: httpx.Timeout) -> str:
    """One sentence for a transport failure: timeout (which one, after how long) or unreachable."""
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return f"{what} at {url} did not accept a connection within {timeouts.connect} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} at {url} sent nothing for {timeouts.read} s (read timeout)"
    return f"{what} at {url} is unreachable: {exc!r}"
