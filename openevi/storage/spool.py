"""Local recording directory of live chats, and the background upload of finished ones to the store.

Chats append to local files while they run (the hot path never touches the network); when a chat
ends its files go to the store in a background task, retried with backoff until they are stored.
`meta.json` goes last: a recording is in the store once its `meta.json` is. Uploads still pending
when the server stops stay on disk and are resumed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from openevi.storage.base import RecordingStore, StorageError, recording_key
from openevi.storage.local import LocalStore

log = logging.getLogger("openevi.storage.spool")

META = "meta.json"


class RecordingSpool:
    """Hands finished recordings in `directory/<chat_id>/` over to the store."""

    def __init__(
        self, directory: Path, store: RecordingStore, *, backoff_s: float = 1.0, backoff_max_s: float = 60.0
    ) -> None:
        self.directory = directory
        self._store = store
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._uploads: dict[str, asyncio.Task[None]] = {}
        # The default store is this very directory: recordings are already where they belong.
        self.in_place = isinstance(store, LocalStore) and store.root.resolve() == directory.resolve()

    def finished(self, chat_dir: Path) -> None:
        """A chat's recording is complete (its meta.json written): upload it in the background."""
        chat_id = chat_dir.name
        if self.in_place or chat_id in self._uploads:
            return
        task = asyncio.get_running_loop().create_task(self._upload(chat_dir), name=f"upload-{chat_id}")
        self._uploads[chat_id] = task
        task.add_done_callback(lambda _: self._uploads.pop(chat_id, None))

    def resume(self) -> None:
        """Queue the finished recordings an earlier run left behind (stopped or crashed mid-upload)."""
        if self.in_place or not self.directory.is_dir():
            return
        for chat_dir in sorted(self.directory.iterdir()):
            if (chat_dir / META).is_file():
                self.finished(chat_dir)

    @property
    def pending(self) -> int:
        return len(self._uploads)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for pending uploads; the rest stay on disk for the next start."""
        tasks = list(self._uploads.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout_s)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if late:
            log.warning("%d recording uploads did not finish; they resume at the next start", len(late))

    async def _upload(self, chat_dir: Path) -> None:
        delay = self._backoff_s
        while True:
            try:
                await self._upload_once(chat_dir)
                return
            except (StorageError, OSError) as exc:
                log.warning("uploading chat %s's recording failed (retry in %.0fs): %s", chat_dir.name, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max_s)

    async def _upload_once(self, chat_dir: Path) -> None:
        files = await asyncio.to_thread(_finished_files, chat_dir)
        if not files:
            return
        for path in files:  # meta.json last: it marks the recording complete in the store
            await self._store.put_file(recording_key(chat_dir.name, path.name), path)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(chat_dir.rmdir)
        log.info("stored the recording of chat %s", chat_dir.name)


def _finished_files(chat_dir: Path) -> list[Path]:
    if not chat_dir.is_dir():
        return []  # uploaded by an earlier attempt
    files = [p for p in chat_dir.iterdir() if p.is_file() and p.suffix != ".tmp"]
    return sorted(files, key=lambda p: (p.name == META, p.name))
