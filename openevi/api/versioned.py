"""One router shape for the three versioned resources (prompts, tools, configs).

Each resource supplies its body models and three hooks; the nine operations are the same.
No `from __future__ import annotations` here: FastAPI must see the body classes passed in.
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.api.auth import Principal
from openevi.api.deps import Caller, Db, MostRecent, Page, PageDep, ReadDb, SettingsDep
from openevi.api.quotas import check_resource_quota
from openevi.schemas.rest import PostedVersionDescription
from openevi.services.views import paged
from openevi.settings import Settings
from openevi.store import resources
from openevi.store.db import transaction
from openevi.store.resources import Kind, Versioned

Create = Callable[[AsyncSession, Principal, Any, Settings], Awaitable[dict[str, Any]]]
CreateVersion = Callable[[AsyncSession, Principal, str, Any, Settings], Awaitable[dict[str, Any]]]
Render = Callable[[AsyncSession, Principal, list[Versioned]], Awaitable[list[dict[str, Any]]]]
# Reads that fetch and render in one go (configs: with their references in one query); NotFoundError
# when absent. (session, caller, id, version) → view; (session, caller, page, most_recent, filters) →
# (views, total).
ReadOne = Callable[[AsyncSession, Principal, str, int], Awaitable[dict[str, Any]]]
ReadPage = Callable[[AsyncSession, Principal, Page, bool, dict[str, Any]], Awaitable[tuple[list[dict[str, Any]], int]]]


@dataclass(frozen=True)
class VersionedResource:
    """What differs between prompts, tools and configs."""

    kind: Kind
    plural: str  # path segment and page key prefix: "prompts" -> /v0/evi/prompts, "prompts_page"
    page_key: str
    create_body: type[BaseModel]
    version_body: type[BaseModel]
    name_body: type[BaseModel]
    create: Create
    create_version: CreateVersion
    render: Render
    read_one: ReadOne | None = None
    read_page: ReadPage | None = None


def json_response(view: dict[str, Any]) -> Response:
    """The view serialized once, to the bytes Starlette's JSONResponse would send. Returning a
    Response skips FastAPI's validation and re-encoding of the dict against the declared
    `response_model`: views are built from stored, already-validated JSON, so both passes would only
    copy it."""
    try:
        body = orjson.dumps(view)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: the standard library handles them
        body = json.dumps(view, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


def versioned_router(res: VersionedResource) -> APIRouter:
    """The nine REST operations of a versioned resource."""
    router = APIRouter(prefix=f"/v0/evi/{res.plural}", tags=[res.plural])
    kind = res.kind
    CreateBody = res.create_body
    VersionBody = res.version_body
    NameBody = res.name_body

    async def read_page(
        s: AsyncSession, caller: Principal, page: Page, most_recent: bool, filters: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        items, total = await resources.list_page(
            s,
            account_id=caller.account_id,
            kind=kind,
            page_number=page.number,
            page_size=page.size,
            restrict_to_most_recent=most_recent,
            **filters,
        )
        return await res.render(s, caller, items), total

    async def read_one(s: AsyncSession, caller: Principal, id: str, version: int) -> dict[str, Any]:
        found = await resources.get_version(s, account_id=caller.account_id, kind=kind, resource_id=id, version=version)
        return (await res.render(s, caller, [found]))[0]

    read_page_of = res.read_page or read_page
    read_one_of = res.read_one or read_one

    async def page_of(caller: Principal, db: Any, page: Page, most_recent: bool, **filters: Any) -> Response:
        async with db() as s:
            views, total = await read_page_of(s, caller, page, most_recent, filters)
            if not views and filters.get("resource_id"):  # an empty page of an unknown id is a 404
                await resources.head(s, account_id=caller.account_id, kind=kind, resource_id=filters["resource_id"])
        return json_response(paged(res.page_key, views, page_number=page.number, page_size=page.size, total=total))

    @router.post("", status_code=201, operation_id=f"create-{kind}")
    async def create(body: CreateBody, caller: Caller, db: Db, settings: SettingsDep) -> dict[str, Any]:  # type: ignore[valid-type]
        async with transaction(db) as s:
            created = await res.create(s, caller, body, settings)
            await check_resource_quota(s, caller.account_id, settings)
            return created

    @router.get("", operation_id=f"list-{res.plural}", response_model=dict[str, Any])
    async def list_all(
        caller: Caller,
        db: ReadDb,
        page: PageDep,
        restrict_to_most_recent: MostRecent = True,
        name: str | None = None,
    ) -> Response:
        return await page_of(caller, db, page, restrict_to_most_recent, name=name)

    @router.get("/{id}", operation_id=f"list-{kind}-versions", response_model=dict[str, Any])
    async def list_versions(
        id: str, caller: Caller, db: ReadDb, page: PageDep, restrict_to_most_recent: MostRecent = True
    ) -> Response:
        return await page_of(caller, db, page, restrict_to_most_recent, resource_id=id)

    @router.post("/{id}", status_code=201, operation_id=f"create-{kind}-version")
    async def create_version(
        id: str,
        body: VersionBody,  # type: ignore[valid-type]
        caller: Caller,
        db: Db,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        async with transaction(db) as s:
            created = await res.create_version(s, caller, id, body, settings)
            await check_resource_quota(s, caller.account_id, settings)
            return created

    @router.patch("/{id}", operation_id=f"update-{kind}-name")
    async def update_name(id: str, body: NameBody, caller: Caller, db: Db) -> dict[str, Any]:  # type: ignore[valid-type]
        async with transaction(db) as s:
            await resources.rename(s, account_id=caller.account_id, kind=kind, resource_id=id, name=body.name)  # type: ignore[attr-defined]
        return {}

    @router.delete("/{id}", operation_id=f"delete-{kind}")
    async def delete_all(id: str, caller: Caller, db: Db) -> dict[str, Any]:
        async with transaction(db) as s:
            await resources.delete_all(s, account_id=caller.account_id, kind=kind, resource_id=id)
        return {}

    @router.get("/{id}/version/{version}", operation_id=f"get-{kind}-version", response_model=dict[str, Any])
    async def get_version(id: str, version: int, caller: Caller, db: ReadDb) -> Response:
        async with db() as s:
            view = await read_one_of(s, caller, id, version)
        return json_response(view)

    @router.patch("/{id}/version/{version}", operation_id=f"update-{kind}-description")
    async def update_description(
        id: str, version: int, body: PostedVersionDescription, caller: Caller, db: Db
    ) -> dict[str, Any]:
        async with transaction(db) as s:
            found = await resources.set_description(
                s,
                account_id=caller.account_id,
                kind=kind,
                resource_id=id,
                version=version,
                description=body.version_description,
            )
            return (await res.render(s, caller, [found]))[0]

    @router.delete("/{id}/version/{version}", operation_id=f"delete-{kind}-version")
    async def delete_version(id: str, version: int, caller: Caller, db: Db) -> dict[str, Any]:
        async with transaction(db) as s:
            await resources.delete_version(s, account_id=caller.account_id, kind=kind, resource_id=id, version=version)
        return {}

    return router
