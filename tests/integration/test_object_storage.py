"""Two openevi instances on one database and one S3 store (a real SeaweedFS): a voice chat recorded
on instance A is reconstructed by instance B, and the presigned URL serves a WAV of both sides.

The database is PostgreSQL when OPENEVI_TEST_POSTGRES_URL is set, else one SQLite file in WAL mode
shared by both processes (SQLite's locking serialises their writes; busy_timeout absorbs the waits).
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soxr
from hume.empathic_voice import AudioInput, SessionSettings

from openevi.audio import urls
from openevi.store import accounts
from openevi.store.db import create_engine, session_factory
from tests.integration.chat_support import client_for, recv_until, wait_chat_ended
from tests.server import ServerProcess, database_url_for_tests
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.support.seaweedfs import SeaweedS3
from tests.support.speech import RATE, speak, to_linear16

SPOKEN = "Please remind me to call my sister tomorrow morning."


@pytest.fixture(scope="module")
def instances(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, seaweedfs: SeaweedS3
) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    root = Path(tmp_path_factory.mktemp("two-instances"))
    database_url = database_url_for_tests() or f"sqlite+aiosqlite:///{root / 'shared.db'}"
    api_key, secret_key = "test_" + secrets.token_urlsafe(16), "testsecret_" + secrets.token_urlsafe(16)
    env = {
        "OPENEVI_LLM_PROVIDER": "OPEN_AI",
        "OPENEVI_LLM_MODEL": "scripted",
        "OPENEVI_OPENAI_BASE_URL": llm.base_url,
        "OPENEVI_OPENAI_API_KEY": "scripted-key",
        "OPENEVI_AUDIO_LEAD_MS": "600000",
        **seaweedfs.server_env(f"s3://recordings-{secrets.token_hex(4)}/openevi"),
    }
    a, b = (
        ServerProcess(
            data_dir=root / name, api_key=api_key, secret_key=secret_key, database_url=database_url, extra_env=env
        )
        for name in ("a", "b")
    )
    a.start(timeout=180)  # one after the other: the first start migrates the shared database
    b.start(timeout=180)
    yield a, b, database_url
    a.stop()
    b.stop()


async def _voice_chat(server: ServerProcess, speech: np.ndarray) -> str:
    """User speech in (linear16, as a microphone streams it), the assistant's spoken answer out."""
    client = client_for(server)
    # 2.5 s of trailing silence: past OPENEVI_TURN_MAX_SILENCE_MS, so the turn ends whatever the
    # end-of-turn model makes of espeak-ng's phrasing.
    audio = to_linear16(np.concatenate([np.zeros(RATE // 4, np.float32), speech, np.zeros(RATE * 5 // 2, np.float32)]))
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        chunk = RATE * 2 // 20  # 50 ms
        for start in range(0, len(audio), chunk):
            await socket.send_publish(AudioInput(data=base64.b64encode(audio[start : start + chunk]).decode()))
            # At a microphone's pace. The recording places each piece where it arrives (an overlap goes
            # right after the previous piece) and the answer where it is sent: input faster than real
            # time piles the user's audio up past the moment the answer starts, so the answer would
            # land inside the user's speech in the mix, where the checks below cannot tell them apart.
            await asyncio.sleep(0.05)
        await recv_until(socket, "assistant_end", limit_s=90)
    await wait_chat_ended(client, metadata.chat_id)
    return str(metadata.chat_id)


def _locate(signal: np.ndarray, pattern: np.ndarray) -> tuple[int, float]:
    """Offset of `pattern` in `signal` (cross-correlation) and their normalised correlation there."""
    size = 1 << (len(signal) + len(pattern)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(pattern, size)), size)
    offset = int(np.argmax(corr[: len(signal) - len(pattern) + 1]))
    segment = signal[offset : offset + len(pattern)]
    score = float(segment @ pattern / (np.linalg.norm(segment) * np.linalg.norm(pattern) + 1e-9))
    return offset, score


async def test_chat_recorded_on_one_instance_is_reconstructed_by_another(
    instances: tuple[ServerProcess, ServerProcess, str], llm: ScriptedLLM, seaweedfs: SeaweedS3
) -> None:
    a, b, database_url = instances
    llm.script(Reply("I will remind you to call your sister tomorrow morning."))
    speech = speak(SPOKEN)
    chat_id = await _voice_chat(a, speech)

    # A uploads the finished tracks in the background, then its local copy is gone.
    spooled = a.data_dir / "recordings" / chat_id
    for _ in range(300):
        if not spooled.exists():
            break
        await asyncio.sleep(0.1)
    assert not spooled.exists(), "instance A did not upload the recording"
    a.stop()  # whatever B does next, A's disk and A's worker are out of reach
    try:
        client = client_for(b)
        async with asyncio.timeout(60):
            while True:
                rec = await client.empathic_voice.chats.get_audio(id=chat_id)
                assert rec.status in ("QUEUED", "IN_PROGRESS", "COMPLETE"), rec
                if rec.status == "COMPLETE":
                    break
                await asyncio.sleep(0.2)
    finally:
        a.start(timeout=180)
    assert rec.filename == f"{chat_id}.wav" and rec.signed_url_expiration_timestamp_millis
    url = rec.signed_audio_url
    assert url and url.startswith(f"{seaweedfs.endpoint_url}/") and "X-Amz-Signature=" in url
    assert not (b.data_dir / "recordings" / chat_id).exists(), "B never had the recording on its disk"

    async with httpx.AsyncClient() as http:
        response = await http.get(url)
        tampered = await http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert tampered.status_code == 403
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert wav.getframerate() == 24000 and wav.getnchannels() == 1
        mix = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0

    # The user's side: the speech streamed to A is in the mix (resampled to 24 kHz). Each chunk lands at
    # its arrival time on the chat's timeline, so the match is strong but not sample-exact (unrelated
    # audio correlates near 0).
    user = np.asarray(soxr.resample(speech, RATE, 24000), dtype=np.float32)
    offset, score = _locate(mix, user)
    assert score > 0.5, f"the user's speech is not in the mix (correlation {score:.2f})"
    # The assistant's side: audible speech outside the user's stretch.
    rest = np.concatenate([mix[:offset], mix[offset + len(user) :]])
    assert np.abs(rest).max() > 0.03 and np.count_nonzero(np.abs(rest) > 0.03) > 2400, "no assistant speech"
    # The same chat's audio is also listed (and signed) through A, now back up.
    again = await client_for(a).empathic_voice.chats.get_audio(id=chat_id)
    assert again.status == "COMPLETE" and (again.signed_audio_url or "").startswith(seaweedfs.endpoint_url)

    # An openevi-signed URL (handed out while the store was a directory) now sends clients to the bucket.
    secret = await _audio_url_secret(database_url)
    path, _ = urls.sign(secret, chat_id, ttl_s=60)
    async with httpx.AsyncClient() as http:
        redirect = await http.get(f"{b.base_url}{path}")
        followed = await http.get(f"{b.base_url}{path}", follow_redirects=True)
        forged = await http.get(f"{b.base_url}{path.replace('signature=', 'signature=0')}")
    assert redirect.status_code == 307 and redirect.headers["location"].startswith(f"{seaweedfs.endpoint_url}/")
    assert followed.status_code == 200 and followed.content == response.content
    assert forged.status_code == 403


async def _audio_url_secret(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as s, s.begin():
            return await accounts.server_secret(s, "audio_urls")
    finally:
        await engine.dispose()
