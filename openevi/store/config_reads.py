"""Config versions read together with the prompt and tool versions they refer to, in one statement.

A config's body holds references (`{"id", "version"}`, version null = LATEST) to a prompt and tools.
Reading the configs and then their references takes two round trips to the database; here the
configs are a CTE, their references are pulled out of the stored JSON in SQL (JSON_EXTRACT/json_each
on SQLite, #>>/json_array_elements on PostgreSQL), and both sets of rows come back from one
UNION ALL. Every branch is filtered by the caller's account. Of each referenced resource the
statement returns exactly the version each reference resolves to (FIXED: that number; LATEST: the
newest), never its history.

The statements are built once per (dialect, shape) with bound parameters and reused.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    JSON,
    CompoundSelect,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store.fast_reads import fetch_all
from openevi.store.models import ResourceHead, ResourceVersion
from openevi.store.resources import (
    COLUMNS,
    MAX_VERSION,
    Versioned,
    has_version,
    head_conditions,
    matching,
    newest_version,
    page_order,
    total_of,
    versioned_row,
)

_heads = ResourceHead.__table__
_versions = ResourceVersion.__table__

Referenced = dict[tuple[str, str], dict[int, Versioned]]  # (kind, id) → version → row


@dataclass(frozen=True)
class ConfigsWithReferences:
    """Config versions in page order, the versions they refer to, and the total for paging."""

    configs: list[Versioned]
    referenced: Referenced
    total: int


def _with_references(configs: Select[Any], dialect: str) -> CompoundSelect[Any]:
    """`configs` (COLUMNS + `total`) UNION ALL the versions its rows refer to, configs in page order."""
    cfg = configs.cte("cfg")
    source: Any
    if dialect == "postgresql":
        # Each body parsed once, to jsonb: a path operator on a json value parses the whole text again,
        # three times per config.
        source = select(cast(cfg.c.body, JSONB).label("body")).cte("cfg_jsonb")
        body = source.c.body
        elements = func.jsonb_array_elements(body["tools"])
        ref_type: Any = JSONB
    else:
        source = cfg
        body = type_coerce(cfg.c.body, JSON)
        elements = func.json_each(cfg.c.body, "$.tools")
        ref_type = JSON
    tool = elements.table_valued("value").alias("tool")
    tool_ref = type_coerce(tool.c.value, ref_type)
    # UNION, not UNION ALL: each (id, version) once, however many configs refer to it.
    refs = union(
        select(body[("prompt", "id")].as_string().label("id"), body[("prompt", "version")].as_integer().label("v")),
        select(tool_ref[("id",)].as_string(), tool_ref[("version",)].as_integer()).select_from(
            source.join(tool, true())
        ),
    ).cte("refs")
    other = _versions.alias()
    newest = select(func.max(other.c.version)).where(other.c.id == refs.c.id).scalar_subquery()
    referenced = (
        select(*COLUMNS, null().label("total"), _heads.c.kind)
        .select_from(
            refs.join(_heads, _heads.c.id == refs.c.id).join(
                _versions,
                and_(_versions.c.id == refs.c.id, _versions.c.version == func.coalesce(refs.c.v, newest)),
            )
        )
        # Not `kind IN (…)`: an IN list is an "expanding" parameter, re-rendered into the SQL at every
        # execution.
        .where(_heads.c.account_id == bindparam("account_id"), or_(_heads.c.kind == "prompt", _heads.c.kind == "tool"))
    )
    rows = union_all(select(*cfg.c, literal("config").label("kind")), referenced)
    return rows.order_by(rows.selected_columns.created_on, rows.selected_columns.id, rows.selected_columns.version)


def _config_rows(where: Any) -> Select[Any]:
    return (
        select(*COLUMNS, literal(1).label("total"))
        .select_from(_heads.join(_versions, _versions.c.id == _heads.c.id))
        .where(_heads.c.account_id == bindparam("account_id"), _heads.c.kind == "config")
        .where(_heads.c.id == bindparam("id"), where)
    )


@cache
def _one_version(dialect: str, latest: bool) -> CompoundSelect[Any]:
    if latest:
        rows = _config_rows(true()).order_by(_versions.c.version.desc()).limit(1)
    else:
        rows = _config_rows(_versions.c.version == bindparam("version"))
    return _with_references(rows, dialect)


@cache
def _page(dialect: str, most_recent: bool, by_name: bool, by_id: bool) -> CompoundSelect[Any]:
    page: dict[str, Any] = {
        "most_recent": most_recent,
        "account_id": bindparam("account_id"),
        "kind": "config",
        "name": bindparam("name") if by_name else None,
        "resource_id": bindparam("id") if by_id else None,
    }
    total = total_of(**page).label("total")
    head_columns = (_heads.c.id, _heads.c.name, _heads.c.created_on)
    # The page is chosen on narrow rows (ids and numbers) and only its rows' bodies are read: sorting
    # every version's JSON to keep ten would cost more than the rest.
    if most_recent:
        # The heads in page order, each one's newest version looked up as a column: evaluated for the
        # page's rows only (PostgreSQL postpones such a column past the sort and limit; SQLite walks
        # the page index and stops), where a join on "version = newest" seeks it for every version.
        conditions = head_conditions(_heads, **{k: v for k, v in page.items() if k != "most_recent"})
        keys = select(*head_columns, newest_version(_heads.c.id).label("version"), total).where(
            *conditions, has_version(_heads)
        )
    else:
        joined, conditions = matching(_heads, _versions, **page)
        keys = select(*head_columns, _versions.c.version, total).select_from(joined).where(*conditions)
    page_keys = (
        keys.order_by(*page_order(_heads, _versions, most_recent=most_recent))
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .cte("page_keys")
    )
    # The columns of COLUMNS, in their order, with the head's from the page keys.
    rows = select(
        page_keys.c.id,
        page_keys.c.name,
        _versions.c.version,
        _versions.c.version_description,
        COLUMNS[4],
        page_keys.c.created_on,
        _versions.c.modified_on,
        page_keys.c.total,
    ).select_from(
        page_keys.join(
            _versions, and_(_versions.c.id == page_keys.c.id, _versions.c.version == page_keys.c.version)
        )
    )
    return _with_references(rows, dialect)


def _split(rows: Any) -> ConfigsWithReferences:
    configs: list[Versioned] = []
    referenced: Referenced = defaultdict(dict)
    total = 0
    for row in rows:
        found = versioned_row(row)
        kind = row[-1]
        if kind == "config":
            configs.append(found)
            total = row[7]
        else:
            referenced[(kind, found.id)][found.version] = found
    return ConfigsWithReferences(configs, referenced, int(total))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def config_version(
    session: AsyncSession, *, account_id: str, config_id: str, version: int | None
) -> ConfigsWithReferences:
    """One config version (the newest when `version` is None) with its references; no configs if absent."""
    if version is not None and not 0 <= version <= MAX_VERSION:
        return ConfigsWithReferences([], {}, 0)
    params: dict[str, Any] = {"account_id": account_id, "id": config_id}
    if version is not None:
        params["version"] = version
    return _split(await fetch_all(session, _one_version(_dialect(session), version is None), params))


async def config_page(
    session: AsyncSession,
    *,
    account_id: str,
    page_number: int,
    page_size: int,
    restrict_to_most_recent: bool,
    name: str | None = None,
    resource_id: str | None = None,
) -> ConfigsWithReferences:
    """A page of config versions with their references, and the number of versions on all pages
    (0 when the page is past the end: the caller counts then)."""
    statement = _page(_dialect(session), restrict_to_most_recent, name is not None, resource_id is not None)
    params: dict[str, Any] = {"account_id": account_id, "offset": page_number * page_size, "limit": page_size}
    if name is not None:
        params["name"] = name
    if resource_id is not None:
        params["id"] = resource_id
    return _split(await fetch_all(session, statement, params))
