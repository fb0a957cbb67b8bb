"""Chats and chat groups: history of past and live conversations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from openevi.api.deps import Caller, Db, PageDep
from openevi.services.chat_views import chat_view, event_view, group_summary, group_view, reconstruction_view
from openevi.services.views import paged
from openevi.store import chats
from openevi.store.chats import PageQuery
from openevi.store.db import transaction

router = APIRouter(prefix="/v0/evi", tags=["chats"])

ChatStatus = Literal["ACTIVE", "USER_ENDED", "USER_TIMEOUT", "MAX_DURATION_TIMEOUT", "INACTIVITY_TIMEOUT", "ERROR"]
Ascending = Annotated[bool, Query()]


def _direction(ascending: bool) -> str:
    return "ASC" if ascending else "DESC"


@router.get("/chats", operation_id="list-chats")
async def list_chats(
    caller: Caller,
    db: Db,
    page: PageDep,
    ascending_order: Ascending = True,
    config_id: str | None = None,
    status: ChatStatus | None = None,
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        items, total = await chats.list_chats(
            s, account_id=caller.account_id, page=q, config_id=config_id, status=status
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


@router.get("/chats/{id}/audio", operation_id="get-audio")
async def get_chat_audio(id: str, caller: Caller, db: Db) -> dict[str, Any]:
    async with transaction(db) as s:
        chat = await chats.get_chat(s, account_id=caller.account_id, chat_id=id)
        rec = await chats.request_reconstruction(s, account_id=caller.account_id, chat_id=id)
        return reconstruction_view(chat, rec)


@router.get("/chat_groups", operation_id="list-chat-groups")
async def list_chat_groups(
    caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True, config_id: str | None = None
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        groups, total = await chats.list_chat_groups(s, account_id=caller.account_id, page=q, config_id=config_id)
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


@router.get("/chat_groups/{id}/audio", operation_id="get-chat-group-audio")
async def get_chat_group_audio(
    id: str, caller: Caller, db: Db, page: PageDep, ascending_order: Ascending = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with db() as s:
        group = await chats.get_chat_group(s, account_id=caller.account_id, group_id=id)
        pairs, total = await chats.group_reconstructions(s, account_id=caller.account_id, group_id=id, page=q)
    body = paged(
        "audio_reconstructions_page",
        [reconstruction_view(c, r) for c, r in pairs],
        page_number=page.number,
        page_size=page.size,
        total=total,
    )
    return {
        "id": group.id,
        "user_id": caller.account_id,
        "num_chats": group.num_chats,
        **body,
        "pagination_direction": _direction(ascending_order),
    }
