"""The `openevi` command: serve, keys, migrate, import, export."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openevi.logging_setup import configure_logging, uvicorn_log_config
from openevi.services import transfer
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
    from openevi.serving import ClosingWebSocketProtocol, http_protocol

    settings = _settings(args)
    configure_logging(settings.log_level)  # redacts ?api_key= and the like from every log line
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": uvicorn_log_config(),
        "ws_max_size": 16 * 1024 * 1024,
        "ws": ClosingWebSocketProtocol,
        # uvicorn waits for every open connection's task without a bound by default: a socket still
        # streaming audio kept a SIGTERM'd server up for over a minute.
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        "timeout_keep_alive": settings.http_keep_alive_s,
    }
    workers = getattr(args, "workers", None) or settings.workers
    if workers > 1:
        # Spawned workers read their settings from the environment: pass the flags on that way.
        for name in ("host", "port", "data_dir", "database_url"):
            value = getattr(settings, name)
            if value is not None:
                os.environ[f"OPENEVI_{name.upper()}"] = str(value)
        os.environ["OPENEVI_WORKERS"] = str(workers)
        _share_metrics(settings)
        # Migrate and make the first key once, here: workers starting together on a fresh database
        # would each try to create the tables and a key of their own.
        _with_store(settings, lambda factory: _bootstrap(factory, settings))
        uvicorn.run(
            "openevi.workers:create_worker_app",
            factory=True,
            workers=workers,
            http="openevi.workers:WorkerHttpProtocol",
            **common,
        )
        return 0
    uvicorn.run(create_app(settings), http=http_protocol(settings.http_header_timeout_s), **common)
    return 0


def _share_metrics(settings: Settings) -> None:
    """Workers write metrics to files in one directory so any of them can serve the sum (openevi/metrics.py)."""
    from openevi.metrics import MULTIPROCESS_ENV

    if os.environ.get(MULTIPROCESS_ENV):
        return  # the operator's own directory (they clear it between runs)
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # samples of a previous run's processes
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)


async def _bootstrap(factory: Any, settings: Settings) -> int:
    from openevi.bootstrap import announce, ensure_default_key

    boot = await ensure_default_key(factory, api_key=settings.api_key, secret_key=settings.secret_key)
    if boot.issued is not None:
        announce(boot.issued, settings)
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


def _read_json(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def cmd_import(args: argparse.Namespace) -> int:
    try:
        parsed = transfer.parse_documents((path, _read_json(path)) for path in args.files)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"cannot read the import: {exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print("cannot read the import: its JSON is nested too deeply", file=sys.stderr)
        return 2
    settings = _settings(args)

    async def work(factory: Any) -> int:
        try:
            async with transaction(factory) as s:
                account_id = await transfer.account_for(s, args.api_key)
            report = await transfer.import_items(
                factory, parsed, account_id=account_id, allow_http_webhooks=settings.allow_http_webhooks
            )
        except transfer.UnknownKeyError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print("\n".join(report.lines()))
        return 0 if report.clean else 1

    return _with_store(settings, work)


def cmd_export(args: argparse.Namespace) -> int:
    async def work(factory: Any) -> int:
        try:
            async with transaction(factory) as s:
                account_id = await transfer.account_for(s, args.api_key)
                pages = await transfer.export_pages(s, account_id=account_id)
        except transfer.UnknownKeyError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        text = json.dumps(pages, indent=2, ensure_ascii=False) + "\n"
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text, encoding="utf-8")
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
    serve.add_argument(
        "--workers",
        type=int,
        help="worker processes on the same port, each a full instance (default 1; env OPENEVI_WORKERS); "
        "more than one needs OPENEVI_REDIS_URL and PostgreSQL or SQLite in WAL mode (docs/deploy.md)",
    )
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
    imp = sub.add_parser(
        "import", help="recreate prompts, tools and configs saved from the REST API, keeping their ids"
    )
    imp.add_argument("files", nargs="+", metavar="FILE", help="JSON: list pages, single objects or lists (- for stdin)")
    imp.add_argument("--api-key", help="import into this key's account (default: the default account)")
    store_flags(imp)
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="write every version of an account's prompts, tools and configs")
    exp.add_argument("--api-key", help="export this key's account (default: the default account)")
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    store_flags(exp)
    exp.set_defaults(func=cmd_export)
    add_webhooks_parser(sub, store_flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
