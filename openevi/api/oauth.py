"""`POST /oauth2-cc/token`: the client-credentials exchange the SDKs' fetchAccessToken performs."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Form, Header, Request

from openevi.api.auth import Authenticator
from openevi.api.errors import BadRequest, Unauthorized

router = APIRouter(tags=["auth"])


@router.post("/oauth2-cc/token", operation_id="fetch-access-token", include_in_schema=False)
async def fetch_access_token(
    request: Request,
    grant_type: Annotated[str, Form()],
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    if grant_type != "client_credentials":
        raise BadRequest("grant_type must be client_credentials", code="unsupported_grant_type")
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthorized("Send HTTP Basic credentials: api_key:secret_key", code="invalid_client")
    try:
        api_key, sep, secret_key = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Malformed Basic credentials", code="invalid_client") from exc
    if not sep:
        raise Unauthorized("Malformed Basic credentials", code="invalid_client")
    authenticator: Authenticator = request.app.state.authenticator
    token, expires_in, issued_at = await authenticator.exchange_client_credentials(api_key, secret_key)
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, "issued_at": issued_at}
