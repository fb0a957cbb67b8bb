"""Accounts, API keys (stored as SHA-256 hashes only) and server-wide secrets."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store.db import new_id, now_ms
from openevi.store.models import Account, ApiKey, ServerSecret

KEY_PREFIX = "oevi_"
SECRET_PREFIX = "oevis_"


def hash_key(raw: str) -> str:
    """Keys are long random strings, so a plain SHA-256 resists guessing; no salt is needed."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key pair; the only moment the raw values exist."""

    account_id: str
    key_id: str
    api_key: str
    secret_key: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    account_id: str
    account_name: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


async def create_account(session: AsyncSession, *, name: str, is_default: bool = False) -> str:
    account = Account(id=new_id(), name=name, is_default=is_default, created_at=now_ms())
    session.add(account)
    await session.flush()
    return account.id


async def default_account_id(session: AsyncSession) -> str | None:
    return await session.scalar(select(Account.id).where(Account.is_default.is_(True)).limit(1))


async def add_key(
    session: AsyncSession,
    *,
    account_id: str,
    name: str,
    api_key: str | None = None,
    secret_key: str | None = None,
) -> IssuedKey:
    """Store a key pair for the account (random values unless given)."""
    api_key = api_key or KEY_PREFIX + secrets.token_urlsafe(30)
    secret_key = secret_key or SECRET_PREFIX + secrets.token_urlsafe(30)
    row = ApiKey(
        id=new_id(),
        account_id=account_id,
        name=name,
        key_hash=hash_key(api_key),
        secret_hash=hash_key(secret_key),
        prefix=api_key[:12],
        created_at=now_ms(),
    )
    session.add(row)
    await session.flush()
    return IssuedKey(account_id=account_id, key_id=row.id, api_key=api_key, secret_key=secret_key)


async def find_key(session: AsyncSession, raw_key: str) -> ApiKey | None:
    """The live (not revoked) key with this raw value."""
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None)))


async def live_key_by_id(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)))


async def count_live_keys(session: AsyncSession) -> int:
    rows = await session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)))
    return len(rows.all())


async def list_keys(session: AsyncSession) -> list[KeyInfo]:
    rows = await session.execute(
        select(ApiKey, Account.name).join(Account, Account.id == ApiKey.account_id).order_by(ApiKey.created_at)
    )
    return [
        KeyInfo(
            key_id=k.id,
            account_id=k.account_id,
            account_name=acc_name,
            name=k.name,
            prefix=k.prefix,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )
        for k, acc_name in rows.all()
    ]


async def revoke_key(session: AsyncSession, *, key_id_or_prefix: str) -> int:
    """Revoke keys by id or by their shown prefix; returns how many were revoked."""
    result = await session.execute(
        update(ApiKey)
        .where(
            (ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix),
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=now_ms())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def server_secret(session: AsyncSession, name: str) -> str:
    """A random secret shared by every instance on this database, made on first use."""
    value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    if value is not None:
        return value
    try:
        async with session.begin_nested():
            session.add(ServerSecret(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # another instance made it first
    value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    assert value is not None
    return value
