"""Signed, expiring download URLs for reconstructed audio (HMAC-SHA256 over path and expiry)."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: str, chat_id: str, *, ttl_s: int, now: float | None = None) -> tuple[str, int]:
    """A path+query for the chat's audio, and its expiry in epoch milliseconds."""
    expires_ms = int(((now if now is not None else time.time()) + ttl_s) * 1000)
    signature = _mac(secret, chat_id, expires_ms)
    return f"/v0/evi/audio/{chat_id}.wav?expires={expires_ms}&signature={signature}", expires_ms


def verify(secret: str, chat_id: str, expires_ms: int, signature: str, *, now: float | None = None) -> bool:
    """True when the signature matches and the URL has not expired."""
    if expires_ms < (now if now is not None else time.time()) * 1000:
        return False
    return hmac.compare_digest(_mac(secret, chat_id, expires_ms), signature)


def _mac(secret: str, chat_id: str, expires_ms: int) -> str:
    return hmac.new(secret.encode(), f"{chat_id}:{expires_ms}".encode(), hashlib.sha256).hexdigest()
