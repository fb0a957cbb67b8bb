"""Recording stores: a local directory and an S3 bucket on a real SeaweedFS; the upload spool."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiobotocore.session import get_session

from openevi.settings import Settings
from openevi.storage import StorageError, create_store, recording_key
from openevi.storage.local import LocalStore
from openevi.storage.s3 import S3Credentials, S3Location, S3Store
from openevi.storage.spool import RecordingSpool
from tests.support.seaweedfs import SeaweedS3


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _s3_store(s3: SeaweedS3, url: str, *, secret: str | None = None) -> S3Store:
    return S3Store(
        S3Location.parse(url),
        credentials=S3Credentials(s3.access_key, secret or s3.secret_key),
        region=s3.region,
        endpoint_url=s3.endpoint_url,
    )


@pytest.fixture
async def s3_store(seaweedfs: SeaweedS3) -> AsyncIterator[S3Store]:
    store = _s3_store(seaweedfs, f"s3://rec-{secrets.token_hex(4)}/deploy/one")
    await store.start()
    yield store
    await store.aclose()


# --- keys and the registry -----------------------------------------------------------------------


def test_keys_cannot_leave_the_store() -> None:
    assert recording_key("chat-1", "user.wav") == "chat-1/user.wav"
    for chat_id in ("..", "../etc", "a/../../b", "", "x y"):
        with pytest.raises(ValueError):
            recording_key(chat_id, "user.wav")
    with pytest.raises(ValueError):
        S3Location.parse("s3://bucket/../up")


def test_registry_picks_the_store_by_url(tmp_path: Path) -> None:
    default = create_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalStore) and default.root == tmp_path / "recordings"
    shared = create_store(Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/shared"))
    assert isinstance(shared, LocalStore) and shared.root == tmp_path / "shared"
    s3 = create_store(
        Settings(
            data_dir=tmp_path,
            storage_url="s3://bucket/some/prefix",
            aws_access_key_id="id",
            aws_secret_access_key="secret",  # type: ignore[arg-type]
        )
    )
    assert isinstance(s3, S3Store) and s3.location == S3Location("bucket", "some/prefix")
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        create_store(Settings(data_dir=tmp_path, storage_url="s3://bucket"))
    with pytest.raises(ValueError, match="unsupported scheme"):
        create_store(Settings(data_dir=tmp_path, storage_url="ftp://host/dir"))


# --- local ---------------------------------------------------------------------------------------


async def test_local_store_takes_files_and_copies_them_out(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    await store.start()
    source = _file(tmp_path / "spool" / "c1" / "user.wav", b"RIFF-user")
    await store.put_file("c1/user.wav", source)
    assert not source.exists(), "the store took the file"
    assert store.local_path("c1/user.wav") == tmp_path / "store" / "c1" / "user.wav"
    assert await store.get_file("c1/user.wav", tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == b"RIFF-user"
    assert not await store.get_file("c1/missing.wav", tmp_path / "none.wav")
    assert await store.presigned_url("c1/user.wav", ttl_s=60) is None, "openevi signs local downloads itself"
    # Recorded in place (the store's own directory): putting is a no-op, the file stays.
    in_place = _file(tmp_path / "store" / "c2" / "meta.json", b"{}")
    await store.put_file("c2/meta.json", in_place)
    assert in_place.read_bytes() == b"{}"


# --- S3 (SeaweedFS) ------------------------------------------------------------------------------


async def test_s3_store_creates_its_bucket_and_round_trips(
    s3_store: S3Store, seaweedfs: SeaweedS3, tmp_path: Path
) -> None:
    payload = secrets.token_bytes(3 * 1024 * 1024 + 17)  # more than one read chunk
    source = _file(tmp_path / "user.wav", payload)
    await s3_store.put_file("chat-a/user.wav", source)
    assert not source.exists(), "uploaded files leave the local disk"
    assert await s3_store.get_file("chat-a/user.wav", tmp_path / "back.wav")
    assert (tmp_path / "back.wav").read_bytes() == payload
    assert not await s3_store.get_file("chat-a/assistant.wav", tmp_path / "none.wav")
    assert s3_store.local_path("chat-a/user.wav") is None
    # The bucket did not exist before start(); objects sit under the URL's prefix.
    async with get_session().create_client(
        "s3",
        region_name=seaweedfs.region,
        endpoint_url=seaweedfs.endpoint_url,
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
    ) as raw:
        listed = await raw.list_objects_v2(Bucket=s3_store.location.bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["deploy/one/chat-a/user.wav"]


async def test_s3_presigned_url_downloads_and_is_signed(s3_store: S3Store, tmp_path: Path) -> None:
    await s3_store.put_file("chat-b/reconstruction.wav", _file(tmp_path / "r.wav", b"RIFF....WAVEfmt "))
    presigned = await s3_store.presigned_url("chat-b/reconstruction.wav", ttl_s=300, filename="chat-b.wav")
    assert presigned is not None
    url, expires_ms = presigned
    async with httpx.AsyncClient() as http:
        ok = await http.get(url)
        tampered = await http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
        unsigned = await http.get(url.split("?")[0])
    assert ok.status_code == 200 and ok.content == b"RIFF....WAVEfmt "
    assert ok.headers["content-type"] == "audio/wav"
    assert 'filename="chat-b.wav"' in ok.headers.get("content-disposition", "")
    assert tampered.status_code == 403 and unsigned.status_code == 403
    assert "X-Amz-Expires=300" in url and expires_ms > 0


async def test_s3_wrong_credentials_are_refused(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    store = _s3_store(seaweedfs, f"s3://rec-{secrets.token_hex(4)}", secret="not-the-secret")
    await store.start()  # logs, does not raise: chats go on recording locally
    source = _file(tmp_path / "meta.json", b"{}")
    with pytest.raises(StorageError):
        await store.put_file("chat-c/meta.json", source)
    assert source.exists(), "a failed upload keeps the local file"
    await store.aclose()


# --- the spool -----------------------------------------------------------------------------------


class FlakyStore(LocalStore):
    """A local store whose first puts fail, recording the order of successful ones."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.stored: list[str] = []

    async def put_file(self, key: str, path: Path) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageError("store unavailable")
        await super().put_file(key, path)
        self.stored.append(key)


async def test_spool_uploads_finished_recordings_retrying_meta_last(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "store", failures=2)
    spool = RecordingSpool(tmp_path / "spool", store, backoff_s=0.01)
    chat = tmp_path / "spool" / "chat-d"
    for name in ("meta.json", "user.wav", "assistant.wav"):
        _file(chat / name, name.encode())
    spool.finished(chat)
    spool.finished(chat)  # once is enough
    await asyncio.wait_for(spool.drain(timeout_s=30), 30)
    assert store.stored == ["chat-d/assistant.wav", "chat-d/user.wav", "chat-d/meta.json"]
    assert not chat.exists(), "the local copy is gone once stored"
    assert (tmp_path / "store" / "chat-d" / "user.wav").read_bytes() == b"user.wav"


async def test_spool_resumes_leftovers_and_keeps_what_it_cannot_store(tmp_path: Path) -> None:
    _file(tmp_path / "spool" / "done" / "meta.json", b"{}")
    _file(tmp_path / "spool" / "live" / "user.wav", b"still recording")  # no meta.json: not finished
    store = FlakyStore(tmp_path / "store", failures=10**6)
    spool = RecordingSpool(tmp_path / "spool", store, backoff_s=0.01)
    spool.resume()
    assert spool.pending == 1
    await spool.drain(timeout_s=0.2)  # the store never comes back: give up, keep the files
    assert spool.pending == 0 and (tmp_path / "spool" / "done" / "meta.json").exists()
    assert (tmp_path / "spool" / "live" / "user.wav").exists()


def test_spool_in_the_store_directory_does_nothing(tmp_path: Path) -> None:
    spool = RecordingSpool(tmp_path / "recordings", LocalStore(tmp_path / "recordings"))
    assert spool.in_place
    spool.finished(tmp_path / "recordings" / "chat")  # no upload task (no running loop needed)
    assert spool.pending == 0
