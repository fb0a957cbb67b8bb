"""An S3-compatible bucket as the recording store (AWS S3, MinIO, SeaweedFS, GCS's XML API), via aiobotocore."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from openevi.storage.base import StorageError, check_key

log = logging.getLogger("openevi.storage.s3")

_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_TRANSPORT_ERRORS = (BotoCoreError, OSError, TimeoutError)
_CONTENT_TYPES = {".wav": "audio/wav", ".json": "application/json"}  # as openevi serves them itself


@dataclass(frozen=True)
class S3Location:
    """`s3://BUCKET/PREFIX` split: objects are stored at `PREFIX/<key>`."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"expected s3://BUCKET/PREFIX, got {url!r}")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
        return cls(parts.netloc, prefix)

    def key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class S3Store:
    """Objects in one bucket under a prefix; downloads are presigned GET URLs (SigV4, expiring)."""

    def __init__(
        self,
        location: S3Location,
        *,
        credentials: S3Credentials,
        region: str,
        endpoint_url: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.location = location
        self._credentials = credentials
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = AioConfig(
            signature_version="s3v4",
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            # Stores other than AWS rarely serve virtual-hosted buckets or the newer checksum trailers.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()
        self._client_lock = asyncio.Lock()

    async def _get_client(self) -> Any:
        async with self._client_lock:
            if self._client is not None:
                return self._client
            self._stack = AsyncExitStack()
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    aws_access_key_id=self._credentials.access_key_id,
                    aws_secret_access_key=self._credentials.secret_access_key,
                    aws_session_token=self._credentials.session_token,
                    config=self._config,
                )
            )
            return self._client

    async def start(self) -> None:
        try:
            await self.ensure_bucket()
        except StorageError as exc:
            # Chats record locally meanwhile; uploads retry (and create the bucket) until the store is back.
            log.error("object storage is not reachable yet: %s", exc)

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (once per process)."""
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if self._bucket_ready:
                return
            client = await self._get_client()
            bucket = self.location.bucket
            try:
                await client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise StorageError(f"cannot use bucket {bucket}: {exc}") from exc
                await self._create_bucket(client, bucket)
            except _TRANSPORT_ERRORS as exc:
                raise StorageError(f"cannot reach the object store: {exc}") from exc
            self._bucket_ready = True

    async def check(self) -> None:
        client = await self._get_client()
        try:
            await client.head_bucket(Bucket=self.location.bucket)
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise StorageError(f"cannot reach the object store: {exc}") from exc

    async def _create_bucket(self, client: Any, bucket: str) -> None:
        extra: dict[str, Any] = {}
        if self._endpoint_url is None and self._region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await client.create_bucket(Bucket=bucket, **extra)
            log.info("created bucket %s", bucket)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # another instance created it just now
                raise StorageError(f"cannot create bucket {bucket}: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StorageError(f"cannot reach the object store: {exc}") from exc

    async def put_file(self, key: str, path: Path) -> None:
        await self.ensure_bucket()
        client = await self._get_client()
        content_type = _CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "binary/octet-stream"
        try:
            with path.open("rb") as body:
                await client.put_object(
                    Bucket=self.location.bucket,
                    Key=self.location.key(key),
                    Body=body,
                    ContentType=content_type,
                )
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise StorageError(f"cannot upload {key}: {exc}") from exc
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def get_file(self, key: str, path: Path) -> bool:
        client = await self._get_client()
        try:
            response = await client.get_object(Bucket=self.location.bucket, Key=self.location.key(key))
            async with response["Body"] as body:
                with path.open("wb") as out:
                    while chunk := await body.read(_CHUNK):
                        out.write(chunk)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise StorageError(f"cannot download {key}: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StorageError(f"cannot download {key}: {exc}") from exc
        return True

    async def presigned_url(self, key: str, *, ttl_s: int, filename: str | None = None) -> tuple[str, int] | None:
        client = await self._get_client()
        params = {"Bucket": self.location.bucket, "Key": self.location.key(key)}
        if filename is not None:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        expires_ms = int((time.time() + ttl_s) * 1000)
        # Signing is local (no request): the URL carries the credentials' signature and its expiry.
        url = await client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
        return str(url), expires_ms

    def local_path(self, key: str) -> Path | None:
        return None

    async def aclose(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))

