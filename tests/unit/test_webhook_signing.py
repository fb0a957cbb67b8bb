"""Webhook signatures: sign/verify round trip, tampering, freshness, hosted-EVI header compatibility."""

from __future__ import annotations

import hashlib
import hmac

from openevi.webhooks.signing import (
    HUME_SIGNATURE_HEADER,
    HUME_TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify,
)

SECRET = "a" * 64
BODY = '{"event_name":"chat_started","chat_id":"c1"}'
TS = 1_700_000_000


def test_headers_verify_round_trip() -> None:
    headers = signature_headers(SECRET, BODY, timestamp=TS)
    assert headers[TIMESTAMP_HEADER] == str(TS)
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    assert verify(SECRET, headers[TIMESTAMP_HEADER], BODY, headers[SIGNATURE_HEADER], now=TS)
    assert verify(SECRET, TS, BODY.encode(), headers[SIGNATURE_HEADER], now=TS)  # bytes body too


def test_signature_is_documented_hmac() -> None:
    # The receiver-side recipe in docs/webhooks.md, written out independently.
    expected = hmac.new(SECRET.encode(), f"{TS}.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == expected
    assert signature_headers(SECRET, BODY, timestamp=TS)[SIGNATURE_HEADER] == f"v1={expected}"


def test_hume_compatible_headers() -> None:
    # Hosted EVI signs `{body}.{timestamp}` and sends bare hex.
    headers = signature_headers(SECRET, BODY, timestamp=TS)
    expected = hmac.new(SECRET.encode(), f"{BODY}.{TS}".encode(), hashlib.sha256).hexdigest()
    assert headers[HUME_TIMESTAMP_HEADER] == str(TS)
    assert headers[HUME_SIGNATURE_HEADER] == expected


def test_tampered_body_timestamp_secret_or_signature_fail() -> None:
    sig = signature_headers(SECRET, BODY, timestamp=TS)[SIGNATURE_HEADER]
    assert not verify(SECRET, TS, BODY.replace("c1", "c2"), sig, now=TS)
    assert not verify(SECRET, TS + 1, BODY, sig, now=TS)
    assert not verify("b" * 64, TS, BODY, sig, now=TS)
    assert not verify(SECRET, TS, BODY, sig[:-1] + ("0" if sig[-1] != "0" else "1"), now=TS)
    assert not verify(SECRET, TS, BODY, sig.removeprefix("v1="), now=TS)  # scheme is required
    assert not verify(SECRET, TS, BODY, "v0=" + sig.removeprefix("v1="), now=TS)
    assert not verify(SECRET, "not-a-number", BODY, sig, now=TS)


def test_tolerance_window_both_directions() -> None:
    sig = signature_headers(SECRET, BODY, timestamp=TS)[SIGNATURE_HEADER]
    assert verify(SECRET, TS, BODY, sig, tolerance_s=300, now=TS + 300)
    assert not verify(SECRET, TS, BODY, sig, tolerance_s=300, now=TS + 301)
    assert verify(SECRET, TS, BODY, sig, tolerance_s=300, now=TS - 300)
    assert not verify(SECRET, TS, BODY, sig, tolerance_s=300, now=TS - 301)  # from the future


def test_any_of_several_signatures_passes() -> None:
    sig = signature_headers(SECRET, BODY, timestamp=TS)[SIGNATURE_HEADER]
    other = "v1=" + "0" * 64
    assert verify(SECRET, TS, BODY, f"{other}, {sig}", now=TS)
    assert not verify(SECRET, TS, BODY, f"{other},{other}", now=TS)
