"""The Authenticator's short cache (openevi/api/auth.py): repeated credentials cost no query, and a
key revoked in the database (from another process) stops working once the 2 s entry has expired,
for the key itself and for the access tokens it minted. The clock is stepped, not waited for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.api.auth import Authenticator
from openevi.api.errors import Unauthorized
from openevi.store import accounts
from openevi.store.db import create_engine, migrate, session_factory, transaction


class CountingFactory:
    """A session factory that counts the sessions the Authenticator opens (one per lookup)."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory
        self.opened = 0

    def __call__(self) -> AbstractAsyncContextManager[AsyncSession]:
        self.opened += 1
        return self.factory()


@dataclass
class Setup:
    factory: async_sessionmaker[AsyncSession]
    counting: CountingFactory
    authenticator: Authenticator
    issued: accounts.IssuedKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def setup(tmp_path: Path, clock: Clock) -> AsyncIterator[Setup]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    await migrate(engine)
    factory = session_factory(engine)
    async with transaction(factory) as s:
        account = await accounts.create_account(s, name="a")
        issued = await accounts.add_key(s, account_id=account, name="a")
    counting = CountingFactory(factory)
    authenticator = Authenticator(counting, "signing-secret", token_ttl_s=3600, clock=clock)  # type: ignore[arg-type]
    try:
        yield Setup(factory, counting, authenticator, issued)
    finally:
        await engine.dispose()


async def _revoke(setup: Setup) -> None:
    async with transaction(setup.factory) as s:
        assert await accounts.revoke_key(s, key_id_or_prefix=setup.issued.key_id) == 1


async def test_a_key_is_looked_up_once_per_ttl_and_revocation_wins_after_it(setup: Setup, clock: Clock) -> None:
    key = setup.issued.api_key
    first = await setup.authenticator.from_api_key(key)
    assert (first.account_id, first.key_id) == (setup.issued.account_id, setup.issued.key_id)
    assert await setup.authenticator.from_api_key(key) == first
    assert setup.counting.opened == 1
    await _revoke(setup)
    clock.now += 1.0  # within the TTL the cached answer stands (the documented staleness bound)
    assert await setup.authenticator.from_api_key(key) == first
    clock.now += 1.5
    with pytest.raises(Unauthorized):
        await setup.authenticator.from_api_key(key)
    assert setup.counting.opened == 2


async def test_unknown_keys_are_cached_too(setup: Setup, clock: Clock) -> None:
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await setup.authenticator.from_api_key("not-a-key")
    assert setup.counting.opened == 1


async def test_tokens_stop_working_once_their_keys_revocation_is_seen(setup: Setup, clock: Clock) -> None:
    token, _, _ = await setup.authenticator.exchange_client_credentials(setup.issued.api_key, setup.issued.secret_key)
    opened = setup.counting.opened
    principal = await setup.authenticator.from_access_token(token)
    assert principal.key_id == setup.issued.key_id
    await setup.authenticator.from_access_token(token)
    assert setup.counting.opened == opened + 1  # the key's liveness is checked once per TTL
    await _revoke(setup)
    clock.now += 2.5
    with pytest.raises(Unauthorized):
        await setup.authenticator.from_access_token(token)
