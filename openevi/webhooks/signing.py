"""Webhook signatures: HMAC-SHA256 with a per-account signing secret.

Every delivery carries two equivalent signatures over the same raw body and timestamp (Unix seconds):

- `X-Openevi-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>` with `X-Openevi-Timestamp`
  (the openevi scheme; `verify()` below checks it).
- `X-Hume-AI-Webhook-Signature: <hex HMAC-SHA256(secret, f"{body}.{timestamp}")>` with
  `X-Hume-AI-Webhook-Timestamp`: what hosted EVI sends (body first, bare hex), so receivers written for
  hosted EVI keep working once their key is set to the openevi signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from sqlalchemy.ext.asyncio import AsyncSession

from openevi.store import accounts

TIMESTAMP_HEADER = "X-Openevi-Timestamp"
SIGNATURE_HEADER = "X-Openevi-Signature"
HUME_TIMESTAMP_HEADER = "X-Hume-AI-Webhook-Timestamp"
HUME_SIGNATURE_HEADER = "X-Hume-AI-Webhook-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}.{body}"` (the openevi v1 scheme)."""
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_hume(secret: str, timestamp: int | str, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of `f"{body}.{timestamp}"` (hosted EVI's order)."""
    message = _as_bytes(body) + f".{timestamp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_headers(secret: str, body: str | bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """All signature headers for one delivery attempt (signed fresh per attempt, so retries stay in tolerance)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, ts, body)}",
        HUME_TIMESTAMP_HEADER: str(ts),
        HUME_SIGNATURE_HEADER: sign_hume(secret, ts, body),
    }


def verify(
    secret: str,
    timestamp: str | int,
    body: str | bytes,
    signature: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True if `signature` (an `X-Openevi-Signature` value) signs `body` at `timestamp` and it is fresh.

    The header may hold several comma-separated `v1=` entries (room for key rotation); any match passes.
    `tolerance_s` bounds clock skew and replay in both directions.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    for part in signature.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.strip(), expected):
            return True
    return False


def secret_name(account_id: str) -> str:
    """Row name in `server_secrets` holding the account's signing secret."""
    return f"webhook_signing:{account_id}"


async def account_signing_secret(session: AsyncSession, account_id: str) -> str:
    """The account's webhook signing secret, made on first use and shared by every instance."""
    return await accounts.server_secret(session, secret_name(account_id))
