"""The recording store port: files under keys `<chat_id>/<name>`, readable by every instance."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

# Keys are chat ids and file names: no empty, "." or ".." segments, so a local store never leaves its root.
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


class StorageError(Exception):
    """The store could not be reached or refused the request (worth retrying later)."""


def recording_key(chat_id: str, name: str) -> str:
    """The key of one file of a chat's recording."""
    return check_key(f"{chat_id}/{name}")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class RecordingStore(Protocol):
    """Finished recordings and reconstructions, shared by every instance of one deployment."""

    async def start(self) -> None:
        """Make the store ready (a bucket is created when missing); failures are logged, not raised."""

    async def put_file(self, key: str, path: Path) -> None:
        """Store the finished local file `path` under `key`; the store takes it (the local file is gone after)."""

    async def get_file(self, key: str, path: Path) -> bool:
        """Copy the object at `key` to `path`; False when there is no such object."""

    async def presigned_url(self, key: str, *, ttl_s: int, filename: str | None = None) -> tuple[str, int] | None:
        """A URL anyone can GET the object at until it expires, and its expiry in epoch ms; None when the
        store has no URLs of its own (openevi then serves the file behind its own signed URL)."""

    def local_path(self, key: str) -> Path | None:
        """Where this process can read the object directly (local stores), else None."""

    async def check(self) -> None:
        """Raise StorageError unless recordings can be stored now (the readiness check)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
