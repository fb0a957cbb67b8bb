"""Closing a dead instance's chats: on a real (SQLite) store, exactly once however many survivors sweep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.bus.memory import MemoryBus
from openevi.chat.instances import InstanceSweeper, close_chats_of
from openevi.chat.ports import ChatEnd
from openevi.chat.runtime import ChatRuntime
from openevi.chat.stored_history import store_chat_end
from openevi.schemas.chat_types import ChatStatus
from openevi.settings import Settings
from openevi.store import accounts, chats
from openevi.store.db import transaction
from openevi.store.models import Chat, ChatEvent
from tests.support.database import migrated
from tests.support.fakes import FakeTTS, ScriptedModel


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}") as made:
        yield made


def survivor(db: async_sessionmaker[AsyncSession], tmp_path: Path, name: str) -> ChatRuntime:
    model = ScriptedModel()
    return ChatRuntime(
        settings=Settings(data_dir=tmp_path),
        db=db,
        bus=MemoryBus(),
        tts=FakeTTS(),
        language_model=lambda spec, key: model,
        instance_id=name,
    )


async def live_chats(db: async_sessionmaker[AsyncSession], instance_id: str, count: int) -> list[str]:
    async with transaction(db) as s:
        account_id = await accounts.create_account(s, name="sweep")
        made = [
            await chats.start_chat(
                s, account_id=account_id, config_id=None, config_version=None, instance_id=instance_id
            )
            for _ in range(count)
        ]
    return [chat.id for chat, _, _ in made]


async def ends_of(db: async_sessionmaker[AsyncSession], chat_id: str) -> tuple[str, int]:
    async with db() as s:
        chat = await s.get(Chat, chat_id)
        assert chat is not None
        events = (await s.scalars(select(ChatEvent).where(ChatEvent.chat_id == chat_id))).all()
    return chat.status, sum(1 for e in events if e.type == "CHAT_END_MESSAGE")


async def test_concurrent_survivors_close_each_chat_once(db: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    dead = await live_chats(db, "dead-one", 4)
    alive = await live_chats(db, "alive-one", 1)
    survivors = [survivor(db, tmp_path, f"survivor-{i}") for i in range(3)]
    closed = await asyncio.gather(*(close_chats_of(r, "dead-one") for r in survivors))
    assert sum(closed) == 4
    for chat_id in dead:
        assert await ends_of(db, chat_id) == ("ERROR", 1)
    assert await ends_of(db, alive[0]) == ("ACTIVE", 0)


async def test_sweeper_waits_for_a_confirmed_absence(db: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    [chat_id] = await live_chats(db, "flaky", 1)
    leases: set[str] | None = {"flaky"}

    async def alive(ids: Collection[str]) -> set[str] | None:
        return None if leases is None else leases & set(ids)

    runtime = survivor(db, tmp_path, "sweeper")
    sweeper = InstanceSweeper(runtime, alive, interval_s=0.01, confirm_s=0.2)
    assert await sweeper.sweep() == 0  # its lease is there
    leases = None
    assert await sweeper.sweep() == 0  # a bus that cannot tell closes nothing
    leases = set()
    assert await sweeper.sweep() == 0  # gone, but not yet for the confirmation period
    leases = {"flaky"}
    assert await sweeper.sweep() == 0  # back (a Redis restart): forgotten
    leases = set()
    assert await sweeper.sweep() == 0
    await asyncio.sleep(0.25)
    assert await sweeper.sweep() == 1
    assert await ends_of(db, chat_id) == ("ERROR", 1)
    assert await sweeper.sweep() == 0


async def test_a_chat_closed_by_a_survivor_is_not_ended_again_by_its_instance(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The "dead" instance comes back (it only lost its lease) and its session ends normally later:
    the chat keeps the survivor's end, with one CHAT_END_MESSAGE and one chat_ended webhook."""
    (chat_id,) = await live_chats(db, "flaky", 1)
    assert await close_chats_of(survivor(db, tmp_path, "survivor"), "flaky") == 1
    async with transaction(db) as s:
        chat = await s.get(Chat, chat_id)
        assert chat is not None
        queued = await store_chat_end(
            s,
            ChatEnd(
                account_id=chat.account_id,
                chat_id=chat_id,
                chat_group_id=chat.chat_group_id,
                config_id=None,
                webhooks=[{"url": "https://hooks.example/end", "events": ["chat_ended"]}],
                started_ms=chat.start_timestamp,
                ended_ms=chat.start_timestamp + 1000,
                status=ChatStatus.USER_ENDED,
                message="client disconnected",
            ),
        )
    assert queued == 0
    assert await ends_of(db, chat_id) == ("ERROR", 1)
