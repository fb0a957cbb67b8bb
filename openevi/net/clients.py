"""HTTP and WebSocket clients that only connect where an `OutboundPolicy` allows.

Each connection resolves the host once, checks every address, and connects to a checked address
itself, so what was checked is what is reached (no second lookup a rebinding DNS server could
answer differently). TLS still verifies and sends SNI for the host name in the URL, and the Host
header is unchanged. Redirects are checked too: every hop opens its connection through the guard.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from websockets.asyncio.client import ClientConnection, connect

from openevi.net.outbound import OutboundPolicy, OutboundRefused

_REASON_LIMIT = 120
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]+")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks and pins the address of every new connection."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.policy.addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses() never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused(path, "Unix sockets are never reached for a tenant URL")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's default transport with every connection opened through a `GuardedBackend`.

    No proxy from the environment is used (httpx ignores them when a transport is given), since a
    proxy would make the connection on our behalf, past the check.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(limits=limits, verify=verify, trust_env=False)
        # httpx offers no parameter for the network backend; rebuild its pool with the same options.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, inner),
        )


async def connect_websocket(url: str, policy: OutboundPolicy, **options: Any) -> ClientConnection:
    """`websockets.connect(url, **options)` reaching only addresses `policy` allows.

    The socket goes to the checked address; the handshake's Host header and TLS SNI/verification
    use the URL's host name. A redirect to another origin is refused by websockets itself once the
    address is pinned, and same-origin redirects reuse the checked address.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme.lower() == "wss"
    port = parts.port or (443 if secure else 80)
    addresses = await policy.addresses(host, port)
    pinned: dict[str, Any] = {"proxy": None, "port": port}
    if secure:
        pinned["server_hostname"] = host
    failure: Exception | None = None
    for ip in addresses:
        try:
            return await connect(url, host=str(ip), **pinned, **options)
        except OSError as exc:
            failure = exc
    assert failure is not None  # addresses() never returns an empty list
    raise failure


def short_reason(text: str, limit: int = _REASON_LIMIT) -> str:
    """A one-line, printable, bounded excerpt of text a remote server sent (safe to show a tenant)."""
    flat = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
