"""The recording store named by `OPENEVI_STORAGE_URL`: a directory, or `s3://BUCKET/PREFIX`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from openevi.settings import Settings
from openevi.storage.base import RecordingStore
from openevi.storage.local import LocalStore


def storage_url(settings: Settings) -> str:
    return settings.storage_url or str(settings.data_dir / "recordings")


def create_store(settings: Settings) -> RecordingStore:
    """Build (not yet start) the store; a bad URL or missing S3 credentials fail here, at server start."""
    url = storage_url(settings)
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        return _s3_store(url, settings)
    if scheme == "file":
        return LocalStore(Path(urlsplit(url).path))
    if scheme == "":
        return LocalStore(Path(url))
    raise ValueError(f"OPENEVI_STORAGE_URL: unsupported scheme {scheme!r} (use a directory or s3://BUCKET/PREFIX)")


def _s3_store(url: str, settings: Settings) -> RecordingStore:
    try:
        from openevi.storage.s3 import S3Credentials, S3Location, S3Store
    except ImportError as exc:  # the optional dependency
        raise RuntimeError("OPENEVI_STORAGE_URL=s3://… needs the S3 client: pip install 'openevi[s3]'") from exc
    if not settings.aws_access_key_id or not settings.aws_secret_access_key:
        # No fallback to instance metadata or profiles: the server never probes addresses on its own.
        raise ValueError("OPENEVI_STORAGE_URL=s3://… needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return S3Store(
        S3Location.parse(url),
        credentials=S3Credentials(
            settings.aws_access_key_id,
            settings.aws_secret_access_key.get_secret_value(),
            settings.aws_session_token.get_secret_value() if settings.aws_session_token else None,
        ),
        region=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url,
    )
