"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.api.auth import Authenticator, Principal
from openevi.settings import Settings


# The dependencies are `async def` even where they do not await: FastAPI runs a plain `def` one in
# its thread pool, a thread round trip on every request.
async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_db(request: Request) -> async_sessionmaker[AsyncSession]:
    return cast(async_sessionmaker[AsyncSession], request.app.state.db)


async def get_read_db(request: Request) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (store.db.read_session_factory): never commit with them."""
    return cast(async_sessionmaker[AsyncSession], request.app.state.read_db)


async def get_principal(request: Request) -> Principal:
    # Headers read here rather than declared as Header() parameters: the credentials stay out of the
    # OpenAPI schema either way, and FastAPI skips extracting and validating two parameters per request.
    authenticator: Authenticator = request.app.state.authenticator
    headers = request.headers
    return await authenticator.authenticate(
        header_key=headers.get("x-hume-api-key"),
        query_key=request.query_params.get("api_key"),
        authorization=headers.get("authorization"),
        query_token=request.query_params.get("access_token"),
    )


@dataclass(frozen=True)
class Page:
    """Zero-based page request (`page_size` 1 to 100, default 10)."""

    number: int
    size: int


async def get_page(
    page_number: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Page:
    return Page(number=page_number, size=page_size)


SettingsDep = Annotated[Settings, Depends(get_settings)]
Db = Annotated[async_sessionmaker[AsyncSession], Depends(get_db)]
ReadDb = Annotated[async_sessionmaker[AsyncSession], Depends(get_read_db)]
Caller = Annotated[Principal, Depends(get_principal)]
PageDep = Annotated[Page, Depends(get_page)]
MostRecent = Annotated[bool, Query()]
