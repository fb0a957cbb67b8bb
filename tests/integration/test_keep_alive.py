"""Idle keep-alive connections outlive the clients' own expiry (issue 19: under 300 REST clients some
requests got no response, when httpx reused a connection at 5 s idle just as uvicorn closed it)."""

from __future__ import annotations

import socket
import time

from tests.server import ServerProcess

IDLE_S = 6.0  # past httpx's 5 s expiry, and past uvicorn's default keep-alive


def get(conn: socket.socket, key: str) -> bytes:
    """One request on the connection and its whole response (head and body, by its Content-Length):
    a partial read would leave the rest of the body to be taken for the next response."""
    conn.sendall(f"GET /v0/evi/configs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Hume-Api-Key: {key}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data  # closed: no (complete) response
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_connection_idle_longer_than_clients_keep_theirs_is_still_answered(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        assert get(conn, server.api_key).startswith(b"HTTP/1.1 200")
        time.sleep(IDLE_S)
        assert get(conn, server.api_key).startswith(b"HTTP/1.1 200")
