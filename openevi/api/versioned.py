"""One router shape for the three versioned resources (prompts, tools, configs).

Each resource supplies its body models and three hooks; the nine operations are the same.
No `from __future__ import annotations` here: FastAPI must see the body classes passed in.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.api.auth import Principal
from openevi.api.deps import Caller, Db, MostRecent, PageDep, SettingsDep
from openevi.schemas.rest import PostedVersionDescription
from openevi.services.views import paged
from openevi.settings import Settings
from openevi.store import resources
from openevi.store.db import transaction
from openevi.store.resources import Kind, Versioned

Create = Callable[[AsyncSession, Principal, Any, Settings], Awaitable[dict[str, Any]]]
CreateVersion = Callable[[AsyncSession, Principal, str, Any, Settings], Awaitable[dict[str, Any]]]
Render = Callable[[AsyncSession, Principal, list[Versioned]], Awaitable[list[dict[str, Any]]]]


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


def versioned_router(res: VersionedResource) -> APIRouter:
    """The nine REST operations of a versioned resource."""
    router = APIRouter(prefix=f"/v0/evi/{res.plural}", tags=[res.plural])
    kind = res.kind
    CreateBody = res.create_body
    VersionBody = res.version_body
    NameBody = res.name_body

    async def page_of(caller: Principal, db: Any, page: Any, most_recent: bool, **filters: Any) -> dict[str, Any]:
        async with db() as s:
            if filters.get("resource_id"):
                await resources.head(s, account_id=caller.account_id, kind=kind, resource_id=filters["resource_id"])
            items, total = await resources.list_page(
                s,
                account_id=caller.account_id,
                kind=kind,
                page_number=page.number,
                page_size=page.size,
                restrict_to_most_recent=most_recent,
                **filters,
            )
            views = await res.render(s, caller, items)
        return paged(res.page_key, views, page_number=page.number, page_size=page.size, total=total)

    @router.post("", status_code=201, operation_id=f"create-{kind}")
    async def create(body: CreateBody, caller: Caller, db: Db, settings: SettingsDep) -> dict[str, Any]:  # type: ignore[valid-type]
        async with transaction(db) as s:
            return await res.create(s, caller, body, settings)

    @router.get("", operation_id=f"list-{res.plural}")
    async def list_all(
        caller: Caller,
        db: Db,
        page: PageDep,
        restrict_to_most_recent: MostRecent = True,
        name: str | None = None,
    ) -> dict[str, Any]:
        return await page_of(caller, db, page, restrict_to_most_recent, name=name)

    @router.get("/{id}", operation_id=f"list-{kind}-versions")
    async def list_versions(
        id: str, caller: Caller, db: Db, page: PageDep, restrict_to_most_recent: MostRecent = True
    ) -> dict[str, Any]:
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
            return await res.create_version(s, caller, id, body, settings)

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

    @router.get("/{id}/version/{version}", operation_id=f"get-{kind}-version")
    async def get_version(id: str, version: int, caller: Caller, db: Db) -> dict[str, Any]:
        async with db() as s:
            found = await resources.get_version(
                s, account_id=caller.account_id, kind=kind, resource_id=id, version=version
            )
            return (await res.render(s, caller, [found]))[0]

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
