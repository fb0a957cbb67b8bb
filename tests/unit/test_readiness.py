"""`GET /readyz`: ready only when the database, the bus and the recording store answer, and not draining."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openevi.api.drain import Drain
from openevi.api.operations import readiness_router
from openevi.bus.memory import MemoryBus
from openevi.storage.local import LocalStore
from openevi.store.db import create_engine, session_factory


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = FastAPI()
    app.include_router(readiness_router)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ready.db'}")
    (tmp_path / "recordings").mkdir()
    app.state.db = session_factory(engine)
    app.state.bus = MemoryBus()
    app.state.recording_store = LocalStore(tmp_path / "recordings")
    app.state.drain = Drain(timeout_s=1)
    yield app


def test_ready_when_everything_answers(app: FastAPI) -> None:
    response = TestClient(app).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok", "storage": "ok"}}


def test_unready_when_the_recording_store_is_gone(app: FastAPI, tmp_path: Path) -> None:
    app.state.recording_store = LocalStore(tmp_path / "unmounted")
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "bus": "ok", "storage": "unreachable"}


def test_unready_when_the_database_is_unreachable(app: FastAPI, tmp_path: Path) -> None:
    app.state.db = session_factory(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"))
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["database"] == "unreachable"


def test_unready_while_draining(app: FastAPI) -> None:
    app.state.drain.draining = True
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503 and response.json() == {"status": "draining"}
