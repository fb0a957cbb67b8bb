"""Helpers shared by the REST integration tests: clients, spec validation, direct store access."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from hume import AsyncHumeClient, HumeClient
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store import accounts
from openevi.store.db import create_engine, session_factory, transaction
from tests.server import ServerProcess
from tests.support.spec import load_spec

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sync_client(server: ServerProcess, api_key: str | None = None) -> HumeClient:
    return HumeClient(api_key=api_key or server.api_key, base_url=server.base_url)


def async_client(server: ServerProcess, api_key: str | None = None) -> AsyncHumeClient:
    return AsyncHumeClient(api_key=api_key or server.api_key, base_url=server.base_url)


def http(server: ServerProcess, api_key: str | None = None) -> httpx.Client:
    """A raw HTTP client authenticated with `api_key` (the session key by default)."""
    return httpx.Client(base_url=server.base_url, headers={"X-Hume-Api-Key": api_key or server.api_key}, timeout=30.0)


def assert_validation_error(response: httpx.Response) -> list[dict[str, Any]]:
    """A 422 in the spec's HTTPValidationError shape; returns its detail list."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, list) and detail, body
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}, item
        assert isinstance(item["loc"], list) and all(isinstance(p, str | int) for p in item["loc"]), item
        assert isinstance(item["msg"], str) and isinstance(item["type"], str), item
    validate_spec("HTTPValidationError", body)
    return detail  # type: ignore[no-any-return]


def assert_error_body(response: httpx.Response, status: int) -> dict[str, Any]:
    """A non-validation error: JSON `{error, message, code}` with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert {"error", "message", "code"} <= set(body), body
    assert all(isinstance(body[k], str) and body[k] for k in ("error", "message", "code")), body
    return body  # type: ignore[no-any-return]


# --- the spec ------------------------------------------------------------------------------------


def validate_spec(component: str, instance: Any) -> None:
    """Validate `instance` against `#/components/schemas/<component>` of the REST spec."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": load_spec()["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


# --- direct store access (what the chat engine would write) ----------------------------------------


def database_url(server: ServerProcess) -> str:
    if server.database_url:
        return server.database_url
    return f"sqlite+aiosqlite:///{(server.data_dir / 'openevi.db').resolve()}"


@asynccontextmanager
async def store(server: ServerProcess) -> AsyncIterator[AsyncSession]:
    """One committed transaction against the server's own database."""
    engine = create_engine(database_url(server))
    try:
        async with transaction(session_factory(engine)) as session:
            yield session
    finally:
        await engine.dispose()


def new_account_key(server: ServerProcess, name: str = "tests") -> str:
    """A key of a brand-new account, made straight in the store (no CLI start-up cost)."""

    async def make() -> str:
        async with store(server) as session:
            account_id = await accounts.create_account(session, name=name)
            issued = await accounts.add_key(session, account_id=account_id, name=name)
        return issued.api_key

    return run_async(make())


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a loop of its own in a thread of its own.

    Callable from sync tests and from inside the test event loop alike.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def account_of(session: AsyncSession, api_key: str) -> str:
    row = await accounts.find_key(session, api_key)
    assert row is not None, "unknown api key"
    return row.account_id
