"""What an account uses: stored event bytes, chats started recently, live API keys.

These are the cheap queries behind the quotas in `openevi/api/quotas.py` and the revocation watch.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.schemas.chat_types import ChatStatus
from openevi.store.models import ApiKey, Chat


def text_bytes(text: str | None) -> int:
    """UTF-8 size of a stored text (ASCII text is measured without encoding it)."""
    if not text:
        return 0
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def event_bytes(*texts: str | None) -> int:
    """The stored size of one event: the sum of its text columns."""
    return sum(text_bytes(t) for t in texts)


async def account_stored_bytes(session: AsyncSession, account_id: str) -> int:
    """Bytes of event text and recordings (charged when a chat ends) stored for all the account's chats."""
    query = select(func.coalesce(func.sum(Chat.stored_bytes), 0)).where(Chat.account_id == account_id)
    total = await session.scalar(query)
    return int(total or 0)


async def chats_started_since(session: AsyncSession, account_id: str, since_ms: int) -> int:
    """Chats the account started at or after `since_ms` (uses the (account, start) index)."""
    count = await session.scalar(
        select(func.count()).select_from(Chat).where(Chat.account_id == account_id, Chat.start_timestamp >= since_ms)
    )
    return int(count or 0)


async def active_chats(session: AsyncSession, account_id: str, since_ms: int) -> int:
    """The account's ACTIVE chats started at or after `since_ms`, on any instance (the (account, start)
    index bounds the scan; a chat cannot be older than the maximum duration)."""
    count = await session.scalar(
        select(func.count())
        .select_from(Chat)
        .where(Chat.account_id == account_id, Chat.start_timestamp >= since_ms, Chat.status == ChatStatus.ACTIVE)
    )
    return int(count or 0)


async def live_key_ids(session: AsyncSession, key_ids: Iterable[str]) -> set[str]:
    """The subset of `key_ids` that exist and are not revoked (one query)."""
    wanted = list(set(key_ids))
    if not wanted:
        return set()
    rows = await session.scalars(select(ApiKey.id).where(ApiKey.id.in_(wanted), ApiKey.revoked_at.is_(None)))
    return set(rows.all())
