"""The short-lived token that lets a Twilio Media Stream join the call its voice webhook accepted.

Twilio sends the API key only to the voice webhook; the stream socket gets what the TwiML put in
its `<Parameter>`s. So the webhook signs what the stream needs (account, config, call) with a
server secret, and the socket checks it: the API key itself never appears in TwiML.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CallGrant:
    """What a stream token allows: one call's chat, for one account and config."""

    account_id: str
    key_id: str  # the API key that accepted the call (quotas, revocation)
    call_sid: str
    config_id: str | None
    config_version: int | None
    allow_connection: bool
    metadata_digest: str  # binds the caller metadata sent beside the token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def metadata_digest(metadata: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(sorted(metadata.items())), separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest()[:12])


def issue(secret: str, grant: CallGrant, *, ttl_s: float, now: float | None = None) -> str:
    payload = {
        "a": grant.account_id,
        "k": grant.key_id,
        "s": grant.call_sid,
        "c": grant.config_id,
        "v": grant.config_version,
        "o": grant.allow_connection,
        "m": grant.metadata_digest,
        "e": int((now if now is not None else time.time()) + ttl_s),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body)}"


def verify(secret: str, token: str, *, now: float | None = None) -> CallGrant | None:
    """The grant of a valid, unexpired token; None otherwise."""
    body, _, mac = token.partition(".")
    if not body or not hmac.compare_digest(_mac(secret, body).encode(), mac.encode()):
        return None
    try:
        payload = json.loads(_unb64(body))
        if float(payload["e"]) < (now if now is not None else time.time()):
            return None
        return CallGrant(
            account_id=str(payload["a"]),
            key_id=str(payload["k"]),
            call_sid=str(payload["s"]),
            config_id=payload["c"],
            config_version=payload["v"],
            allow_connection=bool(payload["o"]),
            metadata_digest=str(payload["m"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())
