"""Background audio reconstruction: QUEUED → IN_PROGRESS → COMPLETE | ERROR, surviving restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.audio.reconstruction import ReconstructionError, reconstruct
from openevi.store.db import now_ms, transaction
from openevi.store.models import AudioReconstruction, Chat

log = logging.getLogger("openevi.audio.worker")

# A reconstruction IN_PROGRESS for longer than this was abandoned by a process that died.
STALE_MS = 5 * 60 * 1000


class ReconstructionWorker:
    """Processes queued reconstructions of ended chats, one at a time, off the event loop."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], recordings_dir: Path, poll_s: float = 2.0) -> None:
        self._factory = factory
        self._dir = recordings_dir
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audio-reconstruction")

    def notify(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
            chat_id = await s.scalar(
                select(AudioReconstruction.chat_id)
                .join(Chat, Chat.id == AudioReconstruction.chat_id)
                .where(AudioReconstruction.status == "QUEUED", Chat.status != "ACTIVE")
                .order_by(AudioReconstruction.modified_at)
                .limit(1)
            )
        if chat_id is None:
            return False
        async with transaction(self._factory) as s:
            claimed = await s.execute(
                update(AudioReconstruction)
                .where(AudioReconstruction.chat_id == chat_id, AudioReconstruction.status == "QUEUED")
                .values(status="IN_PROGRESS", modified_at=now_ms())
            )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return True  # another worker took it
        try:
            path = await asyncio.to_thread(reconstruct, self._dir / chat_id)
            values: dict[str, object] = {"status": "COMPLETE", "filename": f"{chat_id}.wav", "error": None}
            log.info("reconstructed audio of chat %s (%s)", chat_id, path)
        except (ReconstructionError, OSError, ValueError) as exc:
            values = {"status": "ERROR", "error": str(exc)}
        async with transaction(self._factory) as s:
            await s.execute(
                update(AudioReconstruction)
                .where(AudioReconstruction.chat_id == chat_id)
                .values(modified_at=now_ms(), **values)
            )
        return True
