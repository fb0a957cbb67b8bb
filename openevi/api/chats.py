"""Chats and chat groups: history of past and live conversations."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from openevi.api.deps import Caller, Db, PageDep
from openevi.schemas.chat_types import ChatStatus
from openevi.services.chat_views import chat_view, event_view, group_summary, group_view
from openevi.services.views import paged
from openevi.store import chats
from openevi.store.chats import PageQuery

router = APIRouter(prefix="/v0/evi", tags=["chats"])

Ascending = Annotated[bool, Query()]
# The spec types the filter as a uuid; config ids are uuids, so anything else is a 422, not an empty page.
ConfigId = Annotated[UUID | None, Query()]


def _str(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _direction(ascending: bool) -> str:
    return "ASC" if ascending else "DESC"


@router.get("/chats", operation_id="list-chats")
async def list_chats(
    caller: Caller,
    db: Db,
    page: PageDep,
    ascending_order: Ascending = True,
    config_id: ConfigId = None,
    status: ChatStatus | None = None,
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        items, total = await chats.list_chats(
            s, account_id=caller.account_id, page=q, config_id=_str(config_id), status=status
        )
    body = paged("chats_page", [chat_view(c) for c in items], page_number=page.number, page_size=page.size, total=total)
    return {**body, "pagination_direction": _direction(ascending_order)}


@router.get("/chats/{id}", operation_id="list-chat-events")
async def list_chat_events(
    id: str, caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        chat = await chats.get_chat(s, account_id=caller.account_id, chat_id=id)
        events, total = await chats.list_events(s, account_id=caller.account_id, page=q, chat_id=id)
    body = paged(
        "events_page",
        [event_view(e) for e in events],
        page_number=page.number,
        page_size=page.size,
        total=total,
    )
    return {**chat_view(chat), **body, "pagination_direction": _direction(ascending_order)}


@router.get("/chat_groups", operation_id="list-chat-groups")
async def list_chat_groups(
    caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True, config_id: ConfigId = None
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        groups, total = await chats.list_chat_groups(s, account_id=caller.account_id, page=q, config_id=_str(config_id))
    body = paged(
        "chat_groups_page",
        [group_view(g) for g in groups],
        page_number=page.number,
        page_size=page.size,
        total=total,
    )
    return {**body, "pagination_direction": _direction(ascending_order)}


@router.get("/chat_groups/{id}", operation_id="get-chat-group")
async def get_chat_group(
    id: str,
    caller: Caller,
    db: Db,
    page: PageDep,
    ascending_order: Ascending = True,
    status: ChatStatus | None = None,
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        group = await chats.get_chat_group(s, account_id=caller.account_id, group_id=id)
        items, total = await chats.list_chats(s, account_id=caller.account_id, page=q, chat_group_id=id, status=status)
    body = paged("chats_page", [chat_view(c) for c in items], page_number=page.number, page_size=page.size, total=total)
    return {**group_summary(group), **body, "pagination_direction": _direction(ascending_order)}


@router.get("/chat_groups/{id}/events", operation_id="list-chat-group-events")
async def list_chat_group_events(
    id: str, caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        await chats.get_chat_group(s, account_id=caller.account_id, group_id=id)
        events, total = await chats.list_events(s, account_id=caller.account_id, page=q, group_id=id)
    body = paged(
        "events_page",
        [event_view(e) for e in events],
        page_number=page.number,
        page_size=page.size,
        total=total,
    )
    return {"id": id, **body, "pagination_direction": _direction(ascending_order)}
