"""A directory as the recording store (the default: `<data dir>/recordings`; a shared mount serves many instances)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from openevi.storage.base import StorageError, check_key


class LocalStore:
    """Files under `root/<key>`; downloads go through openevi's own signed URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(_move, path, self.path(key))

    async def get_file(self, key: str, path: Path) -> bool:
        return await asyncio.to_thread(_copy, self.path(key), path)

    async def presigned_url(self, key: str, *, ttl_s: int, filename: str | None = None) -> tuple[str, int] | None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    async def check(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK):
            raise StorageError(f"recordings directory {self.root} is not writable")

    async def aclose(self) -> None:
        return None


def _move(source: Path, target: Path) -> None:
    if source.resolve() == target.resolve():
        return  # recorded in place (the spool is this store's directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        os.replace(source, target)
        return
    except OSError:
        pass  # another filesystem (a shared mount): copy, then swap in atomically
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    source.unlink()


def _copy(source: Path, target: Path) -> bool:
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:
        return False
    return True
