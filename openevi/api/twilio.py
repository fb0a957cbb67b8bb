"""Phone calls: Twilio's voice webhook (`/v0/evi/twilio`) and the Media Stream socket it opens.

The webhook checks the caller's credentials and config, then answers TwiML that connects the call
to `/v0/evi/twilio/stream` with a signed, short-lived token. The stream socket turns the call into
a normal chat (history, webhooks, control plane) through the Twilio transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketState

from openevi.api.auth import Authenticator, Principal
from openevi.api.errors import ApiError
from openevi.api.quotas import ChatAdmission, QuotaExceeded, ServerBusy, ServerDraining
from openevi.chat import lifecycle
from openevi.chat.runtime import ChatRuntime
from openevi.schemas.chat_types import ChatStatus
from openevi.schemas.protocol import AudioConfiguration
from openevi.services.configs import load_config
from openevi.settings import Settings
from openevi.store import accounts
from openevi.store.errors import NotFoundError
from openevi.transports import call_token, twiml
from openevi.transports.twilio import (
    MULAW,
    PHONE_RATE,
    MediaStreamBridge,
    StreamProtocolError,
    StreamStart,
    wait_for_start,
)

log = logging.getLogger("openevi.api.twilio")
router = APIRouter(tags=["phone"])

STREAM_PATH = "/v0/evi/twilio/stream"
TOKEN_TTL_S = 120
START_TIMEOUT_S = 10.0
_SECRET_NAME = "twilio_streams"
_FALSE = {"false", "0", "no", "off"}

# Voice-webhook fields → twilio_metadata keys of the chat webhooks (Hume's names).
_METADATA_FIELDS = {
    "CallSid": "call_sid",
    "AccountSid": "account_sid",
    "From": "from_number",
    "To": "to_number",
    "CallerName": "caller_name",
    "Caller": "caller_number",
    "FromCity": "from_city",
    "FromState": "from_state",
    "FromZip": "from_zip",
    "FromCountry": "from_country",
    "ToCity": "to_city",
    "ToState": "to_state",
    "ToZip": "to_zip",
    "ToCountry": "to_country",
}

# Stream tokens already used (call SID → expiry): a token opens one stream.
_used_tokens: dict[str, float] = {}


def _twiml(body: str, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type="application/xml")


def _refuse_call(text: str) -> Response:
    # Twilio reads out a 200 TwiML answer; an HTTP error would only say "an application error occurred".
    return _twiml(twiml.say_and_hang_up(text))


def _external_base(request: Request | WebSocket, settings: Settings) -> tuple[str, str]:
    """(scheme, host) the caller reached us at: OPENEVI_PUBLIC_URL, else the proxy's headers, else the request."""
    if settings.public_url:
        scheme, _, rest = settings.public_url.rstrip("/").partition("://")
        return scheme, rest
    headers = request.headers
    scheme = (headers.get("x-forwarded-proto") or request.url.scheme).split(",")[0].strip()
    host = (headers.get("x-forwarded-host") or headers.get("host") or request.url.netloc).split(",")[0].strip()
    return scheme.replace("ws", "http"), host


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio requested (and signed), including its query string."""
    scheme, host = _external_base(request, settings)
    query = request.url.query
    return f"{scheme}://{host}{request.url.path}" + (f"?{query}" if query else "")


async def _stream_secret(request: Request | WebSocket) -> str:
    async with request.app.state.db() as s, s.begin():
        return await accounts.server_secret(s, _SECRET_NAME)


@router.api_route("/v0/evi/twilio", methods=["GET", "POST"], include_in_schema=False)
async def voice_webhook(request: Request) -> Response:
    """Answer an incoming (or outgoing) call: connect it to a chat, or say why not and hang up."""
    settings: Settings = request.app.state.settings
    form = await request.form() if request.method == "POST" else None
    posted = [(k, v) for k, v in form.multi_items() if isinstance(v, str)] if form is not None else []
    fields = dict(posted) if form is not None else dict(request.query_params)
    if settings.twilio_auth_token:
        given = request.headers.get("x-twilio-signature")
        if not twiml.signature_is_valid(settings.twilio_auth_token, signed_url(request, settings), posted, given):
            log.warning("voice webhook with a bad X-Twilio-Signature refused")
            return Response("Invalid X-Twilio-Signature", status_code=403, media_type="text/plain")
    q = request.query_params
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = await authenticator.authenticate(
            header_key=request.headers.get("x-hume-api-key"),
            query_key=q.get("api_key"),
            authorization=None,
            query_token=q.get("access_token"),
        )
    except ApiError:
        return _refuse_call("Sorry, this phone number's API key was not accepted. Goodbye.")
    version: int | None = None
    if q.get("config_version") not in (None, "", "None"):
        try:
            version = int(q["config_version"])
        except ValueError:
            return _refuse_call("Sorry, this phone number's config version is not a number. Goodbye.")
    config_id = q.get("config_id") or None
    config: dict[str, Any] | None = None
    if config_id:
        try:
            async with request.app.state.db() as s:
                config = await load_config(s, account_id=principal.account_id, config_id=config_id, version=version)
        except NotFoundError:
            return _refuse_call("Sorry, this phone number's configuration was not found. Goodbye.")
    admission: ChatAdmission = request.app.state.chat_admission
    try:
        async with admission.admit(principal):
            pass  # checked now so the caller hears why; the stream is admitted for real
    except ServerDraining:
        # An HTTP error, not TwiML: Twilio then tries the number's fallback URL (or the balancer another instance).
        return Response("This server is restarting", status_code=503, headers={"Retry-After": "1"})
    except (QuotaExceeded, ServerBusy):
        return _refuse_call("Sorry, this service is at its limit of calls right now. Please try again later.")
    call_sid = fields.get("CallSid")
    if not call_sid:
        return _refuse_call("Sorry, this request did not come from a phone call. Goodbye.")
    metadata = {key: fields.get(name, "") for name, key in _METADATA_FIELDS.items()}
    if not metadata["caller_number"]:
        metadata["caller_number"] = metadata["from_number"]
    grant = call_token.CallGrant(
        account_id=principal.account_id,
        key_id=principal.key_id,
        call_sid=call_sid,
        config_id=config["id"] if config else None,
        config_version=config["version"] if config else None,
        allow_connection=(q.get("allow_connection") or "true").strip().lower() not in _FALSE,
        metadata_digest=call_token.metadata_digest(metadata),
    )
    token = call_token.issue(await _stream_secret(request), grant, ttl_s=TOKEN_TTL_S)
    scheme, host = _external_base(request, settings)
    stream_url = f"{'wss' if scheme == 'https' else 'ws'}://{host}{STREAM_PATH}"
    return _twiml(twiml.connect_stream(stream_url, {"token": token, **{k: v for k, v in metadata.items() if v}}))


async def _receive_json(websocket: WebSocket) -> dict[str, Any] | None:
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return None
        raw = frame.get("text") if frame.get("text") is not None else frame.get("bytes")
        if raw is None:
            continue
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # nested 100k deep: a frame to skip, before or after auth
            continue
        if isinstance(message, dict):
            return message


def _claim(grant: call_token.CallGrant) -> bool:
    """A token opens one stream: a replayed `start` is refused."""
    now = time.time()
    for sid, expiry in list(_used_tokens.items()):
        if expiry < now:
            del _used_tokens[sid]
    if grant.call_sid in _used_tokens:
        return False
    _used_tokens[grant.call_sid] = now + TOKEN_TTL_S
    return True


async def _admit(websocket: WebSocket, start: StreamStart) -> call_token.CallGrant | None:
    grant = call_token.verify(await _stream_secret(websocket), start.parameters.get("token", ""))
    if grant is None or grant.call_sid != start.call_sid:
        return None
    metadata = {key: start.parameters.get(key, "") for key in _METADATA_FIELDS.values()}
    if call_token.metadata_digest(metadata) != grant.metadata_digest:
        return None
    return grant if _claim(grant) else None


def _release(grant: call_token.CallGrant) -> None:
    """The stream was refused after its token was claimed: Twilio's retry may use the token again."""
    _used_tokens.pop(grant.call_sid, None)


@router.websocket(STREAM_PATH)
async def media_stream(websocket: WebSocket) -> None:
    """One call's Media Stream: authenticated by the token its `start` message carries."""
    runtime: ChatRuntime = websocket.app.state.chat_runtime
    await websocket.accept()

    async def receive() -> dict[str, Any] | None:
        return await _receive_json(websocket)

    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            start = await wait_for_start(receive)
    except (TimeoutError, StreamProtocolError) as exc:
        log.warning("media stream refused: %s", exc or "no start message")
        await _close(websocket, 1008)
        return
    if start.encoding != MULAW or start.sample_rate != PHONE_RATE or start.channels != 1:
        # Checked before the token is claimed: a refused start must not use up the call's token.
        log.warning("media stream refused: audio %s/%d/%d", start.encoding, start.sample_rate, start.channels)
        await _close(websocket, 1003)
        return
    grant = await _admit(websocket, start)
    if grant is None:
        log.warning("media stream for call %s refused: bad or used token", start.call_sid)
        await _close(websocket, 1008)
        return
    metadata = {key: start.parameters.get(key, "") for key in _METADATA_FIELDS.values()}
    admission: ChatAdmission = websocket.app.state.chat_admission
    try:
        principal = Principal(account_id=grant.account_id, key_id=grant.key_id)
        async with admission.admit(principal, answered_call=True) as admitted:
            opened = await lifecycle.open_chat(
                runtime,
                lifecycle.ChatRequest(
                    account_id=grant.account_id,
                    config_id=grant.config_id,
                    config_version=grant.config_version,
                    allow_connection=grant.allow_connection,
                    caller=lifecycle.PhoneCaller(
                        caller_number=metadata["caller_number"] or None, twilio_metadata=metadata
                    ),
                ),
            )
            admitted(opened.session)
    except (lifecycle.ChatRefused, ApiError) as exc:
        log.warning("call %s: chat not started: %s", start.call_sid, exc)
        _release(grant)
        await _close(websocket, 1008)
        return
    session = opened.session
    session.ear.configure(AudioConfiguration(encoding="linear16", sample_rate=PHONE_RATE, channels=1))

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message, separators=(",", ":")))

    bridge = MediaStreamBridge(session, start.stream_sid, send)
    try:
        call = asyncio.create_task(bridge.run(receive, session.subscribe()), name=f"call-{session.chat_id}")
        await session.start(resumed=False, session_settings=None)
        ended_by = await call
        if ended_by == "chat":
            await _close(websocket, 1000)  # Twilio ends the <Connect>, and with it the call
    except Exception:
        log.exception("call %s (chat %s) failed", start.call_sid, session.chat_id)
        await session.close(ChatStatus.ERROR, reason="internal error")
        await _close(websocket, 1011)
        raise
    finally:
        await session.close(ChatStatus.USER_ENDED, reason="caller hung up")


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):  # the client closed it at the same moment
            await websocket.close(code=code)
