"""The reconstruction worker reads tracks from the recording store, whichever instance recorded them."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.audio.worker import UPLOAD_WAIT_MS, ReconstructionWorker
from openevi.storage import StorageError
from openevi.storage.local import LocalStore
from openevi.store import accounts, chats
from openevi.store.db import now_ms, transaction
from openevi.store.models import AudioReconstruction


async def _ended_chat(factory: async_sessionmaker[AsyncSession], *, ended_ago_ms: int = 0) -> str:
    async with transaction(factory) as s:
        account_id = await accounts.create_account(s, name="worker-test")
        chat, _, _ = await chats.start_chat(s, account_id=account_id, config_id=None, config_version=None)
        await chats.end_chat(s, chat_id=chat.id, status="USER_ENDED", end_timestamp=now_ms() - ended_ago_ms)
        await chats.request_reconstruction(s, account_id=account_id, chat_id=chat.id)
        return chat.id


async def _job(factory: async_sessionmaker[AsyncSession], chat_id: str) -> AudioReconstruction:
    async with factory() as s:
        job = await s.get(AudioReconstruction, chat_id)
        assert job is not None
        return job


def _write_track(path: Path, rate: int, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = (0.5 * np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(tone.tobytes())


async def test_waits_for_the_upload_then_mixes_from_the_store(
    factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "shared")  # not this worker's disk: another instance uploads into it
    worker = ReconstructionWorker(factory, store, tmp_path / "scratch")
    chat_id = await _ended_chat(factory)
    assert not await worker._process_one(), "nothing stored yet: back in the queue"
    assert (await _job(factory, chat_id)).status == "QUEUED"

    _write_track(tmp_path / "shared" / chat_id / "user.wav", 16000, 1.0)
    _write_track(tmp_path / "shared" / chat_id / "assistant.wav", 24000, 2.0)
    (tmp_path / "shared" / chat_id / "meta.json").write_text(json.dumps({"user_rate": 16000}))
    assert await worker._process_one()
    job = await _job(factory, chat_id)
    assert (job.status, job.filename, job.error) == ("COMPLETE", f"{chat_id}.wav", None)
    with wave.open(str(tmp_path / "shared" / chat_id / "reconstruction.wav")) as wav:
        assert wav.getframerate() == 24000 and wav.getnframes() == 48000
    assert list((tmp_path / "scratch").iterdir()) == [], "the scratch copy is cleaned up"


async def test_a_recording_that_never_arrives_fails_the_job(
    factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    worker = ReconstructionWorker(factory, LocalStore(tmp_path / "shared"), tmp_path / "scratch")
    chat_id = await _ended_chat(factory, ended_ago_ms=UPLOAD_WAIT_MS + 1000)
    assert await worker._process_one()
    job = await _job(factory, chat_id)
    assert (job.status, job.error) == ("ERROR", "no finished recording for this chat")


class UnreachableStore(LocalStore):
    async def get_file(self, key: str, path: Path) -> bool:
        raise StorageError("connection refused")


async def test_an_unreachable_store_keeps_the_job_queued(
    factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    worker = ReconstructionWorker(factory, UnreachableStore(tmp_path / "shared"), tmp_path / "scratch")
    chat_id = await _ended_chat(factory, ended_ago_ms=UPLOAD_WAIT_MS + 1000)
    assert not await worker._process_one()
    assert (await _job(factory, chat_id)).status == "QUEUED"
