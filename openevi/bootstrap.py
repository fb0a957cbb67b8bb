"""First-start work: the default account and its key."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.settings import Settings
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


SECRET_KEY_FILE = "secret-key.txt"


def announce(issued: accounts.IssuedKey, settings: Settings) -> None:
    """Show a new key once, where the operator sees it (it is never shown again).

    The API key is printed; its secret key (for access tokens) goes to a file in the data dir that
    only this user can read, never into the server's log."""
    lines = ["", "=" * 72]
    if settings.api_key:
        lines.append("openevi: registered OPENEVI_API_KEY for the default account.")
    else:
        lines.append("openevi: created the first API key (shown only this once, store it now):")
        lines.append(f"  api key:    {issued.api_key}")
    if not settings.secret_key:
        path = save_secret_key(settings.data_dir, issued.secret_key)
        lines.append(f"  secret key (for access tokens): in {path} (readable by this user only)")
    lines += ["=" * 72, ""]
    print("\n".join(lines), flush=True)


def save_secret_key(directory: Path, secret_key: str) -> Path:
    """Write the secret key to `directory/secret-key.txt`, mode 0600; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SECRET_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an older file may have been created with other rights
        out.write(secret_key + "\n")
    return path
