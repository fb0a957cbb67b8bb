"""Background audio reconstruction: QUEUED → IN_PROGRESS → COMPLETE | ERROR, surviving restarts.

Any instance may take a job: the tracks come from the recording store (whichever instance recorded
the chat), are mixed in a scratch directory and the result goes back to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.audio.reconstruction import RECONSTRUCTION, ReconstructionError, reconstruct
from openevi.audio.recorder import ASSISTANT_TRACK, META, USER_TRACK
from openevi.periodic import cancel_and_wait
from openevi.storage import RecordingStore, StorageError, recording_key
from openevi.store.db import now_ms, transaction
from openevi.store.models import AudioReconstruction, Chat

log = logging.getLogger("openevi.audio.worker")

# A reconstruction IN_PROGRESS for longer than this was abandoned by a process that died.
STALE_MS = 5 * 60 * 1000
# A chat's recording reaches the store shortly after the chat ends (uploads retry in the background);
# until this long after the end a missing recording is waited for, then the job fails.
UPLOAD_WAIT_MS = 10 * 60 * 1000


class _NotStoredYet(Exception):
    pass


class ReconstructionWorker:
    """Processes queued reconstructions of ended chats, one at a time, off the event loop."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        store: RecordingStore,
        scratch_dir: Path,
        poll_s: float = 2.0,
        upload_wait_ms: int = UPLOAD_WAIT_MS,
    ) -> None:
        self._factory = factory
        self._store = store
        self._scratch = scratch_dir
        self._poll_s = poll_s
        self._upload_wait_ms = upload_wait_ms
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audio-reconstruction")

    def notify(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        async with transaction(self._factory) as s:
            await s.execute(
                update(AudioReconstruction)
                .where(
                    AudioReconstruction.status == "IN_PROGRESS", AudioReconstruction.modified_at < now_ms() - STALE_MS
                )
                .values(status="QUEUED", modified_at=now_ms())
            )
        while True:
            try:
                while await self._process_one():
                    pass
            except Exception:
                log.exception("audio reconstruction loop failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)

    async def _process_one(self) -> bool:
        """Claim and reconstruct one queued chat; False when nothing is ready."""
        async with self._factory() as s:
            row = (
                await s.execute(
                    select(AudioReconstruction.chat_id, Chat.end_timestamp)
                    .join(Chat, Chat.id == AudioReconstruction.chat_id)
                    .where(AudioReconstruction.status == "QUEUED", Chat.status != "ACTIVE")
                    .order_by(AudioReconstruction.modified_at)
                    .limit(1)
                )
            ).first()
        if row is None:
            return False
        chat_id, ended_ms = row
        async with transaction(self._factory) as s:
            claimed = await s.execute(
                update(AudioReconstruction)
                .where(AudioReconstruction.chat_id == chat_id, AudioReconstruction.status == "QUEUED")
                .values(status="IN_PROGRESS", modified_at=now_ms())
            )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return True  # another worker took it
        values: dict[str, object]
        try:
            await self._reconstruct(chat_id)
            values = {"status": "COMPLETE", "filename": f"{chat_id}.wav", "error": None}
            log.info("reconstructed audio of chat %s", chat_id)
        except (_NotStoredYet, StorageError) as exc:
            if isinstance(exc, StorageError) or (ended_ms or 0) > now_ms() - self._upload_wait_ms:
                # Back in the queue (behind the others): the upload or the store should come through.
                await self._set(chat_id, status="QUEUED")
                return False
            values = {"status": "ERROR", "error": "no finished recording for this chat"}
        except (ReconstructionError, OSError, ValueError) as exc:
            values = {"status": "ERROR", "error": str(exc)}
        await self._set(chat_id, **values)
        return True

    async def _set(self, chat_id: str, **values: object) -> None:
        async with transaction(self._factory) as s:
            await s.execute(
                update(AudioReconstruction)
                .where(AudioReconstruction.chat_id == chat_id)
                .values(modified_at=now_ms(), **values)
            )

    async def _reconstruct(self, chat_id: str) -> None:
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=f"reconstruct-{chat_id}-", dir=self._scratch))
        try:
            if not await self._store.get_file(recording_key(chat_id, META), work / META):
                raise _NotStoredYet(chat_id)
            for track in (USER_TRACK, ASSISTANT_TRACK):
                await self._store.get_file(recording_key(chat_id, track), work / track)  # a silent side has none
            output = await asyncio.to_thread(reconstruct, work)
            await self._store.put_file(recording_key(chat_id, RECONSTRUCTION), output)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
