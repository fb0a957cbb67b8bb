"""Test helpers for webhooks: a local HTTP receiver that records requests, and the spec's schemas."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import jsonschema

from tests.support import http_stub
from tests.support.http_stub import QuietHandler
from tests.support.spec import load_spec


def check_spec(component: str, instance: dict[str, Any]) -> None:
    """Validate against `#/components/schemas/<component>` and require exactly its properties."""
    components = load_spec()["components"]
    schema = {"$ref": f"#/components/schemas/{component}", "components": components}
    jsonschema.Draft202012Validator(schema).validate(instance)
    assert set(instance) == set(components["schemas"][component]["properties"]), sorted(instance)


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the receiver answered


class Receiver:
    """A webhook endpoint on 127.0.0.1:`port`; answers 500 to the next `fail_next` requests (or all)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Received] = []
        self.fail_next = 0
        self.fail_always = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    fail = receiver.fail_always or receiver.fail_next > 0
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                    status = 500 if fail else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append(Received(time.monotonic(), self.path, headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = http_stub.serve(self.port, Handler)
        return self

    def stop(self) -> None:
        http_stub.stop(self._server)
        self._server = None

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]
