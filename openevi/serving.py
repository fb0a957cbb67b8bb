"""uvicorn's HTTP and WebSocket protocols, hardened against clients that never finish a request.

uvicorn closes idle keep-alive connections, but a client that opens a connection and then sends
its request line and headers slowly (or never finishes them) holds a socket and a file descriptor
for as long as it likes. Here each request head must be complete within `header_timeout_s` of its
first byte (or of the connection opening); otherwise the server answers 408 and closes.

An upgrade request is handed to the WebSocket protocol, whose parser refuses a request line or a
header over 8 KiB: it prepares a 414/431 answer but uvicorn never sends it nor closes the socket
(no event comes out of the parser), so anonymous clients could hold every file descriptor.
`ClosingWebSocketProtocol` sends that answer and closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 29\r\nconnection: close\r\n\r\nRequest headers took too long"
)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that times out slow request heads (set `header_timeout_s` on a subclass)."""

    header_timeout_s: float = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_deadline()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)


def http_protocol(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to give uvicorn (`http=`), with this deadline."""
    return type("HttpProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s})


class ClosingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that answers and closes a handshake its parser refused."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.handshake_initiated or self.conn.handshake_exc is None or self.transport.is_closing():
            return
        # websockets queued the 414/431 (or an EOF for garbage) but produced no event for uvicorn.
        self.handshake_complete = self.close_sent = True  # nothing else is sent on this socket
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
