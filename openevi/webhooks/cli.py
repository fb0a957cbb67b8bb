"""`openevi webhooks secret`: print an account's webhook signing secret (what receivers verify with)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from openevi.settings import Settings
from openevi.store import accounts
from openevi.store.db import create_engine, migrate, session_factory, transaction
from openevi.webhooks.signing import account_signing_secret


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


async def _secret(settings: Settings, account_key: str | None) -> tuple[str | None, str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        async with transaction(session_factory(engine)) as s:
            if account_key:
                key = await accounts.find_key(s, account_key)
                account_id = key.account_id if key is not None else None
            else:
                account_id = await accounts.default_account_id(s)
            if account_id is None:
                return None, ""
            return account_id, await account_signing_secret(s, account_id)
    finally:
        await engine.dispose()


def cmd_webhooks_secret(args: argparse.Namespace) -> int:
    account_id, secret = asyncio.run(_secret(_settings(args), args.account_key))
    if account_id is None:
        print("no live key matches --account-key" if args.account_key else "no default account", file=sys.stderr)
        return 1
    print(f"account: {account_id}", file=sys.stderr)
    print(secret)  # only line on stdout, so scripts can capture it
    return 0


def add_parser(sub: Any, store_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `openevi webhooks …` on the main command's subparsers."""
    hooks = sub.add_parser("webhooks", help="webhook delivery tools")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    secret = hooks_sub.add_parser("secret", help="print an account's webhook signing secret")
    secret.add_argument("--account-key", help="an API key of the account (default: the default account)")
    store_flags(secret)
    secret.set_defaults(func=cmd_webhooks_secret)
