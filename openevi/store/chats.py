"""Chats, chat groups, their event log and audio reconstruction state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from openevi.store.db import new_id, now_ms
from openevi.store.errors import NotFoundError
from openevi.store.models import AudioReconstruction, Chat, ChatEvent, ChatGroup
from openevi.store.usage import event_bytes

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class PageQuery:
    number: int
    size: int
    ascending: bool


async def _page(
    session: AsyncSession, query: Select[Any], order_cols: tuple[Any, ...], page: PageQuery
) -> tuple[list[Any], int]:
    """One page, ordered by `order_cols`; the last of them must make the order total, or rows that
    tie (two events in one millisecond) could repeat or go missing across pages."""
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = [col.asc() if page.ascending else col.desc() for col in order_cols]
    rows = await session.scalars(query.order_by(*order).offset(page.number * page.size).limit(page.size))
    return list(rows.all()), int(total)


# --- writes (used by the chat engine) ----------------------------------------------------------


async def start_chat(
    session: AsyncSession,
    *,
    account_id: str,
    config_id: str | None,
    config_version: int | None,
    resumed_chat_group_id: str | None = None,
    metadata: str | None = None,
    instance_id: str | None = None,
) -> tuple[Chat, ChatGroup, bool]:
    """Create an ACTIVE chat in a new group, or in the given group; returns (chat, group, resumed)."""
    ts = now_ms()
    group: ChatGroup | None = None
    if resumed_chat_group_id is not None:
        group = await get_chat_group(session, account_id=account_id, group_id=resumed_chat_group_id)
    resumed = group is not None
    if group is None:
        group = ChatGroup(
            id=new_id(),
            account_id=account_id,
            first_start_timestamp=ts,
            num_chats=0,
            active=True,
            most_recent_start_timestamp=ts,
        )
        session.add(group)
        await session.flush()
    chat = Chat(
        id=new_id(),
        account_id=account_id,
        chat_group_id=group.id,
        config_id=config_id,
        config_version=config_version,
        status=ACTIVE,
        start_timestamp=ts,
        event_count=0,
        chat_metadata=metadata,
        instance_id=instance_id,
    )
    session.add(chat)
    group.num_chats = group.num_chats + 1
    group.most_recent_start_timestamp = ts
    group.most_recent_chat_id = chat.id
    group.most_recent_config_id = config_id
    group.most_recent_config_version = config_version
    group.active = True
    await session.flush()
    return chat, group, resumed


async def append_event(
    session: AsyncSession,
    *,
    chat_id: str,
    role: str,
    type: str,
    message_text: str | None = None,
    emotion_features: str | None = None,
    metadata: str | None = None,
    related_event_id: str | None = None,
    timestamp: int | None = None,
    event_id: str | None = None,
) -> ChatEvent:
    """Append one event and bump the chat's counter in the same transaction."""
    size = event_bytes(message_text, emotion_features, metadata)
    seq = await session.scalar(
        update(Chat)
        .where(Chat.id == chat_id)
        .values(event_count=Chat.event_count + 1, stored_bytes=Chat.stored_bytes + size)
        .returning(Chat.event_count)
    )
    if seq is None:
        raise NotFoundError(f"No chat with id {chat_id}")
    chat = await session.get(Chat, chat_id)
    assert chat is not None
    event = ChatEvent(
        id=event_id or new_id(),
        chat_id=chat_id,
        chat_group_id=chat.chat_group_id,
        account_id=chat.account_id,
        seq=int(seq),
        timestamp=timestamp or now_ms(),
        role=role,
        type=type,
        message_text=message_text,
        emotion_features=emotion_features,
        event_metadata=metadata,
        related_event_id=related_event_id,
    )
    session.add(event)
    await session.flush()
    return event


async def charge_stored_bytes(session: AsyncSession, *, chat_id: str, size: int) -> None:
    """Count `size` more bytes against the chat (and so its account's storage quota)."""
    await session.execute(update(Chat).where(Chat.id == chat_id).values(stored_bytes=Chat.stored_bytes + size))


async def end_chat(session: AsyncSession, *, chat_id: str, status: str, end_timestamp: int | None = None) -> Chat:
    """Close a chat with its final status; the group stays active while another chat in it is."""
    chat = await session.get(Chat, chat_id)
    if chat is None:
        raise NotFoundError(f"No chat with id {chat_id}")
    if chat.status == ACTIVE:
        chat.status = status
        chat.end_timestamp = end_timestamp or now_ms()
        await session.flush()
        still_active = await session.scalar(
            select(func.count())
            .select_from(Chat)
            .where(Chat.chat_group_id == chat.chat_group_id, Chat.status == ACTIVE)
        )
        if not still_active:
            await session.execute(update(ChatGroup).where(ChatGroup.id == chat.chat_group_id).values(active=False))
    return chat


# --- reads -----------------------------------------------------------------------------------


async def get_chat(session: AsyncSession, *, account_id: str, chat_id: str) -> Chat:
    chat = await session.scalar(select(Chat).where(Chat.id == chat_id, Chat.account_id == account_id))
    if chat is None:
        raise NotFoundError(f"No chat with id {chat_id}")
    return chat


async def get_chat_group(session: AsyncSession, *, account_id: str, group_id: str) -> ChatGroup:
    group = await session.scalar(select(ChatGroup).where(ChatGroup.id == group_id, ChatGroup.account_id == account_id))
    if group is None:
        raise NotFoundError(f"No chat group with id {group_id}")
    return group


async def list_chats(
    session: AsyncSession,
    *,
    account_id: str,
    page: PageQuery,
    config_id: str | None = None,
    status: str | None = None,
    chat_group_id: str | None = None,
) -> tuple[list[Chat], int]:
    query = select(Chat).where(Chat.account_id == account_id)
    if config_id is not None:
        query = query.where(Chat.config_id == config_id)
    if status is not None:
        query = query.where(Chat.status == status)
    if chat_group_id is not None:
        query = query.where(Chat.chat_group_id == chat_group_id)
    return await _page(session, query, (Chat.start_timestamp, Chat.id), page)


async def list_chat_groups(
    session: AsyncSession, *, account_id: str, page: PageQuery, config_id: str | None = None
) -> tuple[list[ChatGroup], int]:
    query = select(ChatGroup).where(ChatGroup.account_id == account_id)
    if config_id is not None:
        used = select(Chat.chat_group_id).where(Chat.account_id == account_id, Chat.config_id == config_id)
        query = query.where(ChatGroup.id.in_(used))
    return await _page(session, query, (ChatGroup.first_start_timestamp, ChatGroup.id), page)


async def list_events(
    session: AsyncSession,
    *,
    account_id: str,
    page: PageQuery,
    chat_id: str | None = None,
    group_id: str | None = None,
) -> tuple[list[ChatEvent], int]:
    query = select(ChatEvent).where(ChatEvent.account_id == account_id)
    if chat_id is not None:
        query = query.where(ChatEvent.chat_id == chat_id)
        order: tuple[Any, ...] = (ChatEvent.seq,)
    else:
        query = query.where(ChatEvent.chat_group_id == group_id)
        order = (ChatEvent.timestamp, ChatEvent.chat_id, ChatEvent.seq)
    return await _page(session, query, order, page)


async def all_group_events(session: AsyncSession, *, account_id: str, group_id: str) -> list[ChatEvent]:
    """Every event of a chat group in order (for resuming a conversation)."""
    rows = await session.scalars(
        select(ChatEvent)
        .join(Chat, Chat.id == ChatEvent.chat_id)
        .where(ChatEvent.account_id == account_id, ChatEvent.chat_group_id == group_id)
        .order_by(Chat.start_timestamp, ChatEvent.seq)
    )
    return list(rows.all())


async def reconstruction(session: AsyncSession, *, account_id: str, chat_id: str) -> AudioReconstruction | None:
    return await session.scalar(
        select(AudioReconstruction).where(
            AudioReconstruction.chat_id == chat_id, AudioReconstruction.account_id == account_id
        )
    )


async def request_reconstruction(session: AsyncSession, *, account_id: str, chat_id: str) -> AudioReconstruction:
    """The chat's reconstruction, queued now if it was never requested."""
    await get_chat(session, account_id=account_id, chat_id=chat_id)
    found = await reconstruction(session, account_id=account_id, chat_id=chat_id)
    if found is None:
        found = AudioReconstruction(chat_id=chat_id, account_id=account_id, status="QUEUED", modified_at=now_ms())
        session.add(found)
        await session.flush()
    return found


async def group_reconstructions(
    session: AsyncSession, *, account_id: str, group_id: str, page: PageQuery
) -> tuple[list[tuple[Chat, AudioReconstruction | None]], int]:
    chats_page, total = await list_chats(session, account_id=account_id, page=page, chat_group_id=group_id)
    recs = {
        r.chat_id: r
        for r in await session.scalars(
            select(AudioReconstruction).where(AudioReconstruction.chat_id.in_([c.id for c in chats_page]))
        )
    }
    return [(c, recs.get(c.id)) for c in chats_page], total


async def orphaned_chats(session: AsyncSession, *, instance_id: str) -> list[Chat]:
    """ACTIVE chats that this instance owned before it stopped (their sockets are gone)."""
    rows = await session.scalars(select(Chat).where(Chat.status == ACTIVE, Chat.instance_id == instance_id))
    return list(rows.all())
