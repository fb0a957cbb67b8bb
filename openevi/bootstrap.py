"""First-start work: the default account and its key."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.store import accounts
from openevi.store.db import transaction

log = logging.getLogger("openevi.bootstrap")


@dataclass(frozen=True)
class Bootstrapped:
    """A key made at this start (None when nothing new was made)."""

    issued: accounts.IssuedKey | None


async def ensure_default_key(
    factory: async_sessionmaker[AsyncSession], *, api_key: str | None, secret_key: str | None
) -> Bootstrapped:
    """Make `api_key` the default account's key, or make a first key if the server has none."""
    async with transaction(factory) as s:
        if api_key:
            if await accounts.find_key(s, api_key) is not None:
                return Bootstrapped(issued=None)
        elif await accounts.count_live_keys(s) > 0:
            return Bootstrapped(issued=None)
        account_id = await accounts.default_account_id(s)
        if account_id is None:
            account_id = await accounts.create_account(s, name="default", is_default=True)
        issued = await accounts.add_key(
            s, account_id=account_id, name="default", api_key=api_key, secret_key=secret_key
        )
    return Bootstrapped(issued=issued)


def announce(issued: accounts.IssuedKey, *, key_was_given: bool, secret_was_given: bool) -> None:
    """Print a new key once, where the operator sees it (it is never shown again)."""
    lines = ["", "=" * 72]
    if key_was_given:
        lines.append("openevi: registered OPENEVI_API_KEY for the default account.")
        if not secret_was_given:
            lines.append(f"  secret key (for access tokens): {issued.secret_key}")
    else:
        lines.append("openevi: created the first API key (shown only this once, store it now):")
        lines.append(f"  api key:    {issued.api_key}")
        lines.append(f"  secret key: {issued.secret_key}")
    lines += ["=" * 72, ""]
    print("\n".join(lines), flush=True)
