"""Who is calling: API keys, access tokens and the OAuth2 client-credentials exchange.

Accepted credentials (as the official SDKs send them): header `X-Hume-Api-Key`, query `api_key`,
header `Authorization: Bearer <access token>`, query `access_token`.
Access tokens are stateless: `base64url(json) + "." + HMAC-SHA256`, keyed by a server secret
stored in the database so every instance accepts every token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.api.errors import Unauthorized
from openevi.store import accounts

TOKEN_PREFIX = "oevi_at_"
_CACHE_TTL_S = 2.0
_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    account_id: str
    key_id: str


def _remember(cache: dict[str, Any], key: str, entry: Any) -> None:
    if len(cache) >= _CACHE_MAX_ENTRIES:  # bounded memory whatever callers send; refills in one TTL
        cache.clear()
    cache[key] = entry


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Resolves credentials to a Principal, with a short cache so hot REST paths skip the DB."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        signing_secret: str,
        token_ttl_s: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._clock = clock
        self._secret = signing_secret.encode()
        self.token_ttl_s = token_ttl_s
        # Keys are revoked only straight in the database (`openevi keys revoke`, from any process; no
        # server path revokes), so answers are kept for _CACHE_TTL_S only: a revocation takes effect in
        # every server process within that time. Keyed by the
        # key's hash (what the database stores), never the raw key; unknown keys are cached too, so a
        # flood of bad keys costs no queries either.
        self._keys: dict[str, tuple[float, Principal | None]] = {}
        self._live_key_ids: dict[str, tuple[float, bool]] = {}  # for access tokens: is the minting key live?

    async def from_api_key(self, raw_key: str) -> Principal:
        key_hash = accounts.hash_key(raw_key)
        cached = self._keys.get(key_hash)
        now = self._clock()
        if cached and cached[0] > now:
            principal = cached[1]
        else:
            async with self._factory() as session:
                row = await accounts.find_key(session, raw_key)
            principal = Principal(account_id=row.account_id, key_id=row.id) if row else None
            _remember(self._keys, key_hash, (now + _CACHE_TTL_S, principal))
        if principal is None:
            raise Unauthorized("Invalid API key", code="invalid_api_key")
        return principal

    async def _key_is_live(self, key_id: str) -> bool:
        cached = self._live_key_ids.get(key_id)
        now = self._clock()
        if cached and cached[0] > now:
            return cached[1]
        async with self._factory() as session:
            live = await accounts.live_key_by_id(session, key_id) is not None
        _remember(self._live_key_ids, key_id, (now + _CACHE_TTL_S, live))
        return live

    async def exchange_client_credentials(self, api_key: str, secret_key: str) -> tuple[str, int, int]:
        """Check a key pair and mint an access token; returns (token, expires_in, issued_at)."""
        async with self._factory() as session:
            row = await accounts.find_key(session, api_key)
        if row is None or not hmac.compare_digest(row.secret_hash, accounts.hash_key(secret_key)):
            raise Unauthorized("Invalid API key or secret key", code="invalid_client")
        issued = int(time.time())
        payload = {"a": row.account_id, "k": row.id, "iat": issued, "exp": issued + self.token_ttl_s}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return f"{TOKEN_PREFIX}{body}.{sig}", self.token_ttl_s, issued

    async def from_access_token(self, token: str) -> Principal:
        invalid = Unauthorized("Invalid or expired access token", code="invalid_access_token")
        if not token.startswith(TOKEN_PREFIX) or "." not in token:
            raise invalid
        body, _, sig = token[len(TOKEN_PREFIX) :].partition(".")
        expected = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, expected):
            raise invalid
        try:
            payload = json.loads(_unb64(body))
            account_id, key_id, exp = str(payload["a"]), str(payload["k"]), int(payload["exp"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise invalid from exc
        if exp < time.time():
            raise invalid
        if not await self._key_is_live(key_id):
            raise invalid  # the key that minted it was revoked
        return Principal(account_id=account_id, key_id=key_id)

    async def authenticate(
        self,
        *,
        header_key: str | None,
        query_key: str | None,
        authorization: str | None,
        query_token: str | None,
    ) -> Principal:
        """Pick whichever credential was given; missing → 401."""
        if header_key:
            return await self.from_api_key(header_key)
        if query_key:
            return await self.from_api_key(query_key)
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return await self.from_access_token(value.strip())
            raise Unauthorized("Authorization header must be 'Bearer <access token>'", code="invalid_auth_scheme")
        if query_token:
            return await self.from_access_token(query_token)
        raise Unauthorized(
            "Missing credentials: send an X-Hume-Api-Key header or an access token",
            code="missing_credentials",
        )
