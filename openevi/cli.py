"""The `openevi` command: serve, keys, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openevi.settings import Settings
from openevi.store import accounts
from openevi.store.db import create_engine, migrate, session_factory, transaction
from openevi.webhooks.cli import add_parser as add_webhooks_parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "database_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    async def run() -> int:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        try:
            await migrate(engine)
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from openevi.app import create_app

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=16 * 1024 * 1024,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    async def work(_: Any) -> int:
        print("database is up to date")
        return 0

    return _with_store(_settings(args), work)


def cmd_keys_create(args: argparse.Namespace) -> int:
    async def work(factory: Any) -> int:
        async with transaction(factory) as s:
            account_id = await accounts.create_account(s, name=args.name)
            issued = await accounts.add_key(s, account_id=account_id, name=args.name)
        print(f"account:    {account_id}")
        print(f"secret key: {issued.secret_key}")
        print(issued.api_key)  # last line: scripts read the key from here
        return 0

    return _with_store(_settings(args), work)


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(factory: Any) -> int:
        async with factory() as s:
            keys = await accounts.list_keys(s)
        print(f"{'KEY ID':36}  {'PREFIX':12}  {'ACCOUNT':20}  {'NAME':20}  {'CREATED':19}  REVOKED")
        for k in keys:
            print(
                f"{k.key_id:36}  {k.prefix:12}  {k.account_name[:20]:20}  {k.name[:20]:20}  "
                f"{_when(k.created_at):19}  {_when(k.revoked_at)}"
            )
        return 0

    return _with_store(_settings(args), work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(factory: Any) -> int:
        async with transaction(factory) as s:
            count = await accounts.revoke_key(s, key_id_or_prefix=args.key)
        if not count:
            print(f"no live key matches {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked {count} key(s)")
        return 0

    return _with_store(_settings(args), work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openevi", description="Self-hosted EVI-compatible voice AI server")
    sub = parser.add_subparsers(dest="command", required=True)

    def store_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (default ./.openevi; env OPENEVI_DATA_DIR)")
        p.add_argument("--database-url", help="SQLAlchemy async URL (env OPENEVI_DATABASE_URL)")

    serve = sub.add_parser("serve", help="start the server")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    store_flags(serve)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    store_flags(mig)
    mig.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="manage accounts and API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a new account with its own key")
    create.add_argument("--name", required=True)
    store_flags(create)
    create.set_defaults(func=cmd_keys_create)
    lst = keys_sub.add_parser("list", help="list keys (prefixes only)")
    store_flags(lst)
    lst.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    store_flags(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)
    add_webhooks_parser(sub, store_flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
