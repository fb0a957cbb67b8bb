"""Versioned resources (prompts, tools, configs): one head row plus immutable version rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store.db import new_id, now_ms
from openevi.store.errors import NameTakenError, NotFoundError
from openevi.store.models import ResourceHead, ResourceVersion

Kind = Literal["prompt", "tool", "config"]
MAX_VERSION = 2**31 - 1  # versions are 32-bit integer columns


@dataclass(frozen=True)
class Versioned:
    """One version joined with its head."""

    id: str
    name: str
    version: int
    version_description: str | None
    body: dict[str, Any]
    created_on: int
    modified_on: int


def _view(head: ResourceHead, row: ResourceVersion) -> Versioned:
    return Versioned(
        id=head.id,
        name=head.name,
        version=row.version,
        version_description=row.version_description,
        body=row.body,
        created_on=head.created_on,
        modified_on=row.modified_on,
    )


async def _name_taken(session: AsyncSession, account_id: str, kind: Kind, name: str, *, except_id: str = "") -> bool:
    found = await session.scalar(
        select(ResourceHead.id).where(
            ResourceHead.account_id == account_id,
            ResourceHead.kind == kind,
            ResourceHead.name == name,
            ResourceHead.id != except_id,
        )
    )
    return found is not None


async def create(
    session: AsyncSession,
    *,
    account_id: str,
    kind: Kind,
    name: str,
    body: dict[str, Any],
    version_description: str | None,
    resource_id: str | None = None,
) -> Versioned:
    """Create a resource at version 0."""
    if await _name_taken(session, account_id, kind, name):
        raise NameTakenError(f"A {kind} named {name!r} already exists")
    ts = now_ms()
    head = ResourceHead(
        id=resource_id or new_id(), account_id=account_id, kind=kind, name=name, created_on=ts, last_version=0
    )
    row = ResourceVersion(
        id=head.id,
        version=0,
        account_id=account_id,
        kind=kind,
        version_description=version_description,
        body=body,
        created_on=ts,
        modified_on=ts,
    )
    try:
        async with session.begin_nested():
            session.add(head)
            await session.flush()
            session.add(row)
            await session.flush()
    except IntegrityError as exc:  # a concurrent create with the same name won the race
        raise NameTakenError(f"A {kind} named {name!r} already exists") from exc
    return _view(head, row)


async def head(session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str) -> ResourceHead:
    found = await session.scalar(
        select(ResourceHead).where(
            ResourceHead.id == resource_id, ResourceHead.account_id == account_id, ResourceHead.kind == kind
        )
    )
    if found is None:
        raise NotFoundError(f"No {kind} with id {resource_id}")
    return found


async def create_version(
    session: AsyncSession,
    *,
    account_id: str,
    kind: Kind,
    resource_id: str,
    body: dict[str, Any],
    version_description: str | None,
) -> Versioned:
    """Add the next version. The counter update is atomic, so concurrent writers never collide."""
    number = await session.scalar(
        update(ResourceHead)
        .where(ResourceHead.id == resource_id, ResourceHead.account_id == account_id, ResourceHead.kind == kind)
        .values(last_version=ResourceHead.last_version + 1)
        .returning(ResourceHead.last_version)
    )
    if number is None:
        raise NotFoundError(f"No {kind} with id {resource_id}")
    h = await head(session, account_id=account_id, kind=kind, resource_id=resource_id)
    ts = now_ms()
    row = ResourceVersion(
        id=resource_id,
        version=number,
        account_id=account_id,
        kind=kind,
        version_description=version_description,
        body=body,
        created_on=ts,
        modified_on=ts,
    )
    session.add(row)
    await session.flush()
    return _view(h, row)


async def get_version(
    session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str, version: int | None
) -> Versioned:
    """One version, or the latest one when `version` is None."""
    if version is not None and not 0 <= version <= MAX_VERSION:  # PostgreSQL's int4 would overflow: a 500
        raise NotFoundError(f"No version {version} of {kind} with id {resource_id}")
    query = (
        select(ResourceHead, ResourceVersion)
        .join(ResourceVersion, ResourceVersion.id == ResourceHead.id)
        .where(ResourceHead.id == resource_id, ResourceHead.account_id == account_id, ResourceHead.kind == kind)
    )
    if version is None:
        query = query.order_by(ResourceVersion.version.desc()).limit(1)
    else:
        query = query.where(ResourceVersion.version == version)
    found = (await session.execute(query)).first()
    if found is None:
        what = f"version {version} of " if version is not None else ""
        raise NotFoundError(f"No {what}{kind} with id {resource_id}")
    return _view(found[0], found[1])


async def list_page(
    session: AsyncSession,
    *,
    account_id: str,
    kind: Kind,
    page_number: int,
    page_size: int,
    restrict_to_most_recent: bool,
    name: str | None = None,
    resource_id: str | None = None,
) -> tuple[list[Versioned], int]:
    """A page of versions (newest version of each resource only, unless told otherwise) and the total."""
    conditions = [ResourceHead.account_id == account_id, ResourceHead.kind == kind]
    if name is not None:
        conditions.append(ResourceHead.name == name)
    if resource_id is not None:
        conditions.append(ResourceHead.id == resource_id)
    join_on = ResourceVersion.id == ResourceHead.id
    if restrict_to_most_recent:
        latest = (
            select(ResourceVersion.id, func.max(ResourceVersion.version).label("v"))
            .where(ResourceVersion.account_id == account_id, ResourceVersion.kind == kind)
            .group_by(ResourceVersion.id)
            .subquery()
        )
        base = (
            select(ResourceHead, ResourceVersion)
            .join(latest, latest.c.id == ResourceHead.id)
            .join(ResourceVersion, and_(join_on, ResourceVersion.version == latest.c.v))
        )
    else:
        base = select(ResourceHead, ResourceVersion).join(ResourceVersion, join_on)
    base = base.where(*conditions)
    total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = await session.execute(
        base.order_by(ResourceHead.created_on, ResourceHead.id, ResourceVersion.version)
        .offset(page_number * page_size)
        .limit(page_size)
    )
    return [_view(h, v) for h, v in rows.all()], int(total)


async def rename(session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str, name: str) -> None:
    h = await head(session, account_id=account_id, kind=kind, resource_id=resource_id)
    if h.name == name:
        return
    if await _name_taken(session, account_id, kind, name, except_id=resource_id):
        raise NameTakenError(f"A {kind} named {name!r} already exists")
    h.name = name
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise NameTakenError(f"A {kind} named {name!r} already exists") from exc


async def set_description(
    session: AsyncSession,
    *,
    account_id: str,
    kind: Kind,
    resource_id: str,
    version: int,
    description: str | None,
) -> Versioned:
    current = await get_version(session, account_id=account_id, kind=kind, resource_id=resource_id, version=version)
    await session.execute(
        update(ResourceVersion)
        .where(ResourceVersion.id == resource_id, ResourceVersion.version == version)
        .values(version_description=description, modified_on=now_ms())
    )
    return await get_version(session, account_id=account_id, kind=kind, resource_id=current.id, version=current.version)


async def delete_version(session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str, version: int) -> None:
    """Delete one version; the resource disappears with its last version."""
    await get_version(session, account_id=account_id, kind=kind, resource_id=resource_id, version=version)
    await session.execute(
        delete(ResourceVersion).where(ResourceVersion.id == resource_id, ResourceVersion.version == version)
    )
    remaining = await session.scalar(
        select(func.count()).select_from(ResourceVersion).where(ResourceVersion.id == resource_id)
    )
    if not remaining:
        await session.execute(delete(ResourceHead).where(ResourceHead.id == resource_id))


async def delete_all(session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str) -> None:
    await head(session, account_id=account_id, kind=kind, resource_id=resource_id)
    await session.execute(delete(ResourceVersion).where(ResourceVersion.id == resource_id))
    await session.execute(delete(ResourceHead).where(ResourceHead.id == resource_id))


# --- imports: resources recreated with their original ids, version numbers and timestamps ---------


async def find_head(session: AsyncSession, *, resource_id: str) -> ResourceHead | None:
    """The head with this id whatever its account or kind (ids are unique across the database)."""
    return await session.scalar(select(ResourceHead).where(ResourceHead.id == resource_id))


async def find_version(session: AsyncSession, *, resource_id: str, version: int) -> ResourceVersion | None:
    """One stored version by id and number, without any account check (callers check the head)."""
    if not 0 <= version <= MAX_VERSION:
        return None
    return await session.scalar(
        select(ResourceVersion).where(ResourceVersion.id == resource_id, ResourceVersion.version == version)
    )


async def name_taken(session: AsyncSession, *, account_id: str, kind: Kind, name: str) -> bool:
    """Whether the account already has a resource of this kind with this name."""
    return await _name_taken(session, account_id, kind, name)


async def insert_head(
    session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str, name: str, created_on: int
) -> None:
    """A head with a given id and creation time and no versions yet; add them with `insert_version`
    in the same transaction (a head without versions is invisible but keeps its name taken)."""
    if await _name_taken(session, account_id, kind, name):
        raise NameTakenError(f"A {kind} named {name!r} already exists")
    session.add(
        ResourceHead(id=resource_id, account_id=account_id, kind=kind, name=name, created_on=created_on, last_version=0)
    )
    await session.flush()


async def insert_version(
    session: AsyncSession,
    *,
    account_id: str,
    kind: Kind,
    resource_id: str,
    version: int,
    body: dict[str, Any],
    version_description: str | None,
    created_on: int,
    modified_on: int,
) -> None:
    """Store a version with a given number and timestamps. The head's counter ends at least at
    `version`, so versions created later through the API get new numbers."""
    if not 0 <= version <= MAX_VERSION:
        raise ValueError(f"version {version} is out of range")
    bumped = await session.scalar(
        update(ResourceHead)
        .where(ResourceHead.id == resource_id, ResourceHead.account_id == account_id, ResourceHead.kind == kind)
        .values(last_version=case((ResourceHead.last_version < version, version), else_=ResourceHead.last_version))
        .returning(ResourceHead.id)
    )
    if bumped is None:
        raise NotFoundError(f"No {kind} with id {resource_id}")
    session.add(
        ResourceVersion(
            id=resource_id,
            version=version,
            account_id=account_id,
            kind=kind,
            version_description=version_description,
            body=body,
            created_on=created_on,
            modified_on=modified_on,
        )
    )
    await session.flush()
