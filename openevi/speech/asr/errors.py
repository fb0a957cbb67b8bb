"""Errors of speech recognizers."""

from __future__ import annotations

__all__ = ["ASRError"]


class ASRError(Exception):
    """The recognizer is unknown, cannot be loaded, or failed on an utterance."""
