"""Entry points for `openevi serve --workers N`: uvicorn starts each worker process from these names.

Worker processes are spawned, so they get the server's settings from the environment (`cmd_serve`
exports its CLI flags as OPENEVI_* variables first) and name the app and HTTP protocol by import path.
"""

from __future__ import annotations

from fastapi import FastAPI

from openevi.serving import HeaderDeadlineProtocol
from openevi.settings import Settings


class WorkerHttpProtocol(HeaderDeadlineProtocol):
    """The header-deadline protocol with this worker's configured deadline."""

    header_timeout_s = Settings().http_header_timeout_s


def create_worker_app() -> FastAPI:
    """One worker's application (a full instance, with an instance id of its own)."""
    from openevi.app import create_app

    return create_app(Settings())
