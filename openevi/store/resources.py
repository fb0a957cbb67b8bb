"""Versioned resources (prompts, tools, configs): one head row plus immutable version rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from sqlalchemy import Text, and_, bindparam, case, delete, exists, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store.db import json_loads, new_id, now_ms
from openevi.store.errors import NameTakenError, NotFoundError
from openevi.store.models import Account, ResourceHead, ResourceVersion
from openevi.store.usage import text_bytes

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


# Reads select plain columns of the tables (no ORM entities, so no identity map or instance loading),
# in the order of Versioned's fields; the hot statements are built once with bound parameters, so a
# request neither rebuilds them nor recomputes their cache keys.
_heads = ResourceHead.__table__
_versions = ResourceVersion.__table__
COLUMNS = (
    _heads.c.id,
    _heads.c.name,
    _versions.c.version,
    _versions.c.version_description,
    # Fetched as text and decoded by versioned_row with orjson (4x faster than the json module that
    # the JSON type would use; a list page decodes 30 bodies).
    type_coerce(_versions.c.body, Text).label("body"),
    _heads.c.created_on,
    _versions.c.modified_on,
)
_JOINED = _heads.join(_versions, _versions.c.id == _heads.c.id)


def newest_version(resource_id: Any) -> Any:
    """The newest version number of `resource_id`, as a scalar subquery (a primary-key seek)."""
    other = _versions.alias()
    return select(func.max(other.c.version)).where(other.c.id == resource_id).scalar_subquery()


def newest_of(versions: Any, resource_id: Any) -> Any:
    """`versions.version` is the newest version of `resource_id` (a primary-key seek per row:
    cheaper than grouping every version of the account's resources)."""
    return versions.c.version == newest_version(resource_id)


def has_version(heads: Any) -> Any:
    """The head has at least one version (a head without one is an import under way)."""
    other = _versions.alias()
    return exists().where(other.c.id == heads.c.id)


def head_conditions(heads: Any, *, account_id: Any, kind: Any, name: Any, resource_id: Any) -> list[Any]:
    """The heads a page lists (values may be bound parameters)."""
    conditions = [heads.c.account_id == account_id, heads.c.kind == kind]
    if name is not None:
        conditions.append(heads.c.name == name)
    if resource_id is not None:
        conditions.append(heads.c.id == resource_id)
    return conditions


def matching(
    heads: Any,
    versions: Any,
    *,
    most_recent: bool,
    account_id: Any,
    kind: Any,
    name: Any = None,
    resource_id: Any = None,
) -> tuple[Any, list[Any]]:
    """The join and conditions of a page (values may be bound parameters), on these table aliases."""
    on = versions.c.id == heads.c.id
    joined = heads.join(versions, and_(on, newest_of(versions, heads.c.id)) if most_recent else on)
    return joined, head_conditions(heads, account_id=account_id, kind=kind, name=name, resource_id=resource_id)


def page_order(heads: Any, versions: Any, *, most_recent: bool) -> tuple[Any, ...]:
    """The order of a page's rows. With only the newest version of each resource, the version number
    breaks no ties; leaving it out lets the index on (account_id, kind, created_on, id) hand the
    heads over in page order, so the page stops after its rows instead of sorting them all."""
    if most_recent:
        return heads.c.created_on, heads.c.id
    return heads.c.created_on, heads.c.id, versions.c.version


def total_of(
    *, most_recent: bool, account_id: Any, kind: Any, name: Any = None, resource_id: Any = None
) -> Any:
    """How many versions a page's query matches on all pages (arguments as for `matching`), as a
    scalar subquery on tables of its own. A column of the page's rows, it is computed once; SQLite's
    `count(*) OVER ()` cost twice as much (it materializes and sorts every row for the window).
    With only the newest versions that is one per resource that has a version: a count of heads,
    each checked for a version by primary key, rather than a search for every head's newest."""
    heads, versions = _heads.alias(), _versions.alias()
    conditions = head_conditions(heads, account_id=account_id, kind=kind, name=name, resource_id=resource_id)
    if most_recent:
        return select(func.count()).select_from(heads).where(*conditions, has_version(heads)).scalar_subquery()
    joined = heads.join(versions, versions.c.id == heads.c.id)
    return select(func.count()).select_from(joined).where(*conditions).scalar_subquery()


_ONE_HEAD = and_(
    _heads.c.id == bindparam("id"), _heads.c.account_id == bindparam("account_id"), _heads.c.kind == bindparam("kind")
)
_GET_VERSION = select(*COLUMNS).select_from(_JOINED).where(_ONE_HEAD, _versions.c.version == bindparam("version"))
_GET_LATEST = select(*COLUMNS).select_from(_JOINED).where(_ONE_HEAD).order_by(_versions.c.version.desc()).limit(1)


def _body(stored: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(stored, dict):
        return stored
    return cast(dict[str, Any], json_loads(stored))


def versioned_row(row: Sequence[Any]) -> Versioned:
    """A Versioned from a row whose first columns are COLUMNS."""
    return Versioned(row[0], row[1], row[2], row[3], _body(row[4]), row[5], row[6])


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


def stored_size(body: dict[str, Any], version_description: str | None) -> int:
    """What a version stores: its body as JSON and its description (UTF-8 bytes)."""
    return len(orjson.dumps(body)) + text_bytes(version_description)


async def _charge(session: AsyncSession, account_id: str, size: int) -> None:
    """Keep the account's total in step with its versions (in the same transaction)."""
    if size:
        await session.execute(
            update(Account).where(Account.id == account_id).values(resource_bytes=Account.resource_bytes + size)
        )


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
    row = _version_row(head.id, 0, account_id, kind, body, version_description, ts)
    try:
        async with session.begin_nested():
            session.add(head)
            await session.flush()
            session.add(row)
            await session.flush()
    except IntegrityError as exc:  # a concurrent create with the same name won the race
        raise NameTakenError(f"A {kind} named {name!r} already exists") from exc
    await _charge(session, account_id, row.stored_bytes)
    return _view(head, row)


def _version_row(
    resource_id: str,
    number: int,
    account_id: str,
    kind: Kind,
    body: dict[str, Any],
    version_description: str | None,
    ts: int,
) -> ResourceVersion:
    """A new version row, created and modified at `ts`, its stored size counted."""
    return ResourceVersion(
        id=resource_id,
        version=number,
        account_id=account_id,
        kind=kind,
        version_description=version_description,
        body=body,
        created_on=ts,
        modified_on=ts,
        stored_bytes=stored_size(body, version_description),
    )


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
    row = _version_row(resource_id, number, account_id, kind, body, version_description, now_ms())
    session.add(row)
    await session.flush()
    await _charge(session, account_id, row.stored_bytes)
    return _view(h, row)


async def get_version(
    session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str, version: int | None
) -> Versioned:
    """One version, or the latest one when `version` is None."""
    if version is not None and not 0 <= version <= MAX_VERSION:  # PostgreSQL's int4 would overflow: a 500
        raise NotFoundError(f"No version {version} of {kind} with id {resource_id}")
    params: dict[str, Any] = {"id": resource_id, "account_id": account_id, "kind": kind}
    if version is None:
        found = (await session.execute(_GET_LATEST, params)).first()
    else:
        params["version"] = version
        found = (await session.execute(_GET_VERSION, params)).first()
    if found is None:
        what = f"version {version} of " if version is not None else ""
        raise NotFoundError(f"No {what}{kind} with id {resource_id}")
    return versioned_row(found)


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
    page: dict[str, Any] = {
        "most_recent": restrict_to_most_recent,
        "account_id": account_id,
        "kind": kind,
        "name": name,
        "resource_id": resource_id,
    }
    joined, conditions = matching(_heads, _versions, **page)
    # The total rides along as a column, so a page is one statement; only a page past the end (no
    # rows to carry it) needs a separate count.
    rows = (
        await session.execute(
            select(*COLUMNS, total_of(**page).label("total"))
            .select_from(joined)
            .where(*conditions)
            .order_by(*page_order(_heads, _versions, most_recent=restrict_to_most_recent))
            .offset(page_number * page_size)
            .limit(page_size)
        )
    ).all()
    if rows:
        total = rows[0][-1]
    elif page_number == 0:
        total = 0
    else:
        total = await session.scalar(select(total_of(**page))) or 0
    return [versioned_row(r) for r in rows], int(total)


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
    freed = await session.scalar(
        delete(ResourceVersion)
        .where(ResourceVersion.id == resource_id, ResourceVersion.version == version)
        .returning(ResourceVersion.stored_bytes)
    )
    await _charge(session, account_id, -(freed or 0))
    remaining = await session.scalar(
        select(func.count()).select_from(ResourceVersion).where(ResourceVersion.id == resource_id)
    )
    if not remaining:
        await session.execute(delete(ResourceHead).where(ResourceHead.id == resource_id))


async def delete_all(session: AsyncSession, *, account_id: str, kind: Kind, resource_id: str) -> None:
    await head(session, account_id=account_id, kind=kind, resource_id=resource_id)
    freed = (
        await session.scalars(
            delete(ResourceVersion).where(ResourceVersion.id == resource_id).returning(ResourceVersion.stored_bytes)
        )
    ).all()
    await _charge(session, account_id, -sum(freed))
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
    size = stored_size(body, version_description)
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
            stored_bytes=size,
        )
    )
    await session.flush()
    await _charge(session, account_id, size)
