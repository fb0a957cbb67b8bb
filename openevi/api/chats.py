"""Chats and chat groups: history of past and live conversations."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from openevi.api.deps import Caller, Db, Page, PageDep
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


def _page(key: str, items: list[dict[str, Any]], page: Page, ascending: bool, total: int) -> dict[str, Any]:
    """The page envelope of the chat listings, with the order they were read in."""
    body = paged(key, items, page_number=page.number, page_size=page.size, total=total)
    return {**body, "pagination_direction": "ASC" if ascending else "DESC"}


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
    return _page("chats_page", [chat_view(c) for c in items], page, ascending_order, total)


@router.get("/chats/{id}", operation_id="list-chat-events")
async def list_chat_events(
    id: str, caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        chat = await chats.get_chat(s, account_id=caller.account_id, chat_id=id)
        events, total = await chats.list_events(s, account_id=caller.account_id, page=q, chat_id=id)
    return {**chat_view(chat), **_page("events_page", [event_view(e) for e in events], page, ascending_order, total)}


@router.get("/chat_groups", operation_id="list-chat-groups")
async def list_chat_groups(
    caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True, config_id: ConfigId = None
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        groups, total = await chats.list_chat_groups(s, account_id=caller.account_id, page=q, config_id=_str(config_id))
    return _page("chat_groups_page", [group_view(g) for g in groups], page, ascending_order, total)


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
    return {**group_summary(group), **_page("chats_page", [chat_view(c) for c in items], page, ascending_order, total)}


@router.get("/chat_groups/{id}/events", operation_id="list-chat-group-events")
async def list_chat_group_events(
    id: str, caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        await chats.get_chat_group(s, account_id=caller.account_id, group_id=id)
        events, total = await chats.list_events(s, account_id=caller.account_id, page=q, group_id=id)
    return {"id": id, **_page("events_page", [event_view(e) for e in events], page, ascending_order, total)}
