"""The floor of openevi's REST stack: a minimal FastAPI + SQLAlchemy-async app on openevi's data.

Each read is one indexed SELECT of stored JSON rows through an `AsyncSession`, returned the way a
plain FastAPI app returns a dict: no authentication, no rendering, no references resolved. It runs
on the same uvicorn/uvloop/httptools and the same database file (or PostgreSQL database) as the
openevi server it is compared with, so the gap between the two is openevi's own work per request.

Run by `benchmarks/rest.py --floor`:
    FLOOR_DATABASE_URL=sqlite+aiosqlite:///… uvicorn benchmarks.rest_floor:create_app --factory
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from openevi.store.models import ResourceVersion

versions = ResourceVersion.__table__


def create_app() -> FastAPI:
    """The floor app on the database named by FLOOR_DATABASE_URL."""
    # FLOOR_PRE_PING=1: check each connection taken from the pool (openevi did so before it pinged
    # only idle ones). FLOOR_AUTOCOMMIT=1: no BEGIN/ROLLBACK around the SELECT, as openevi's reads on
    # PostgreSQL (store.db.read_session_factory).
    options: dict[str, Any] = {"pool_pre_ping": bool(os.environ.get("FLOOR_PRE_PING"))}
    if os.environ.get("FLOOR_AUTOCOMMIT"):
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_async_engine(os.environ["FLOOR_DATABASE_URL"], **options)
    sessions = async_sessionmaker(engine)
    app = FastAPI()

    async def one(kind: str, id: str, version: int) -> Any:
        async with sessions() as s:
            body = await s.scalar(
                select(versions.c.body).where(
                    versions.c.id == id, versions.c.version == version, versions.c.kind == kind
                )
            )
        if body is None:
            raise HTTPException(404)
        return body

    @app.get("/v0/evi/configs/{id}/version/{version}")
    async def config_version(id: str, version: int) -> Any:
        return await one("config", id, version)

    @app.get("/v0/evi/prompts/{id}/version/{version}")
    async def prompt_version(id: str, version: int) -> Any:
        return await one("prompt", id, version)

    @app.get("/v0/evi/configs")
    async def configs(page_size: int = 10) -> Any:
        async with sessions() as s:
            rows = await s.scalars(
                select(versions.c.body)
                .where(versions.c.kind == "config")
                .order_by(versions.c.created_on, versions.c.id)
                .limit(page_size)
            )
            return {"configs_page": list(rows)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
