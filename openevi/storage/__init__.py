"""Where finished recordings and reconstructions live: a directory or an S3-compatible bucket."""

from openevi.storage.base import RecordingStore, StorageError, recording_key
from openevi.storage.registry import create_store

__all__ = ["RecordingStore", "StorageError", "create_store", "recording_key"]
