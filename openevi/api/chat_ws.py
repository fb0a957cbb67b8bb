"""The chat WebSocket (`/v0/evi/chat`) and the control-plane observer socket (`/chat/{id}/connect`).

The route only authenticates, opens the chat and moves frames; the ChatSession does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from openevi.api.auth import Authenticator, Principal
from openevi.api.errors import ApiError, error_body
from openevi.api.quotas import ChatAdmission
from openevi.api.revocation import CLOSE_CODE, CLOSE_REASON, E_REVOKED
from openevi.bus.base import ChatBus, Observed, StreamEnd
from openevi.chat import lifecycle
from openevi.chat.limits import MessageRate
from openevi.chat.runtime import ChatRuntime
from openevi.chat.session import ChatSession
from openevi.schemas import messages as msg
from openevi.schemas.chat_types import ChatStatus
from openevi.schemas.protocol import SessionSettings
from openevi.settings import Settings
from openevi.transports.evi import AUDIO_NOT_ALLOWED, FrameError, audio_input, is_audio, parse_frame

log = logging.getLogger("openevi.api.chat_ws")
router = APIRouter()

_BRACKETS = re.compile(r"\[([^\]]*)\]")
_TRUE = {"true", "1", "yes", "on"}


# Messages with no event of their own: sent without waiting for the history to be written.
_NOT_STORED = frozenset({msg.AudioOutput.type})
# A socket this many seconds of frames ahead of OPENEVI_CHAT_MAX_FRAMES_PER_S is closed (1008).
FLOOD_CLOSE_S = 5.0
# A wedged database must not stop a chat's socket: past this, the message goes out anyway.
SYNC_WAIT_S = 2.0


def _pacers(settings: Settings) -> tuple[MessageRate | None, MessageRate | None]:
    """How fast one socket is read: frames a second, and bytes a second (bursts of 1 MiB; a larger
    message waits for its share)."""
    frames, size = settings.chat_max_frames_per_s, settings.chat_max_bytes_per_s
    return (
        MessageRate(frames, max(1, int(2 * frames))) if frames else None,
        MessageRate(size, max(size, 1_048_576)) if size else None,
    )


async def _stored_first(session: ChatSession) -> None:
    """Wait until the events recorded so far are stored, so what a client sees survives a kill -9."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SYNC_WAIT_S):
            await session.history.synced()


class Refused(Exception):
    """The upgrade is refused with an HTTP status and an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def nested_query(params: list[tuple[str, str]], root: str) -> dict[str, Any]:
    """`root[a][b]=v` query parameters → {"a": {"b": "v"}} (the SDK's flattening, undone)."""
    out: dict[str, Any] = {}
    for key, value in params:
        if not key.startswith(root + "[") or value == "None":
            continue
        path = _BRACKETS.findall(key[len(root) :])
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            if path:
                node[path[-1]] = value
    return out


def connect_settings(params: list[tuple[str, str]]) -> dict[str, Any]:
    """The connect-time session settings: `session_settings[...]`, plus a top-level `event_limit`."""
    settings = nested_query(params, "session_settings")
    event_limit = dict(params).get("event_limit")
    if event_limit not in (None, "", "None") and "event_limit" not in settings:
        settings["event_limit"] = event_limit
    return settings


async def _authenticate(websocket: WebSocket) -> Principal:
    authenticator: Authenticator = websocket.app.state.authenticator
    q = websocket.query_params
    try:
        return await authenticator.authenticate(
            header_key=websocket.headers.get("x-hume-api-key"),
            query_key=q.get("api_key"),
            authorization=websocket.headers.get("authorization"),
            query_token=q.get("access_token"),
        )
    except ApiError as exc:
        raise Refused(exc.status, exc.code, exc.message) from exc


async def _refuse(websocket: WebSocket, refused: Refused | ApiError) -> None:
    response = JSONResponse(error_body(refused.status, refused.code, refused.message), status_code=refused.status)
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # the server lacks the denial-response extension: a plain refusal (403)
        await websocket.close(code=1008, reason=refused.message[:120])


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


async def _open_chat(
    websocket: WebSocket, runtime: ChatRuntime, principal: Principal
) -> tuple[ChatSession, bool, dict[str, Any] | None]:
    q = websocket.query_params
    config_id = q.get("config_id")
    version: int | None = None
    if q.get("config_version") not in (None, "", "None"):
        try:
            version = int(q["config_version"])
        except ValueError as exc:
            raise Refused(400, "invalid_config_version", "config_version must be an integer") from exc
    settings_query = connect_settings(list(q.multi_items()))
    if settings_query:
        try:
            SessionSettings.model_validate({**settings_query, "type": "session_settings"})
        except ValidationError as exc:
            raise Refused(
                400, "invalid_session_settings", f"Invalid session_settings: {exc.errors()[0]['msg']}"
            ) from exc
    try:
        opened = await lifecycle.open_chat(
            runtime,
            lifecycle.ChatRequest(
                account_id=principal.account_id,
                config_id=config_id or None,
                config_version=version,
                resumed_chat_group_id=q.get("resumed_chat_group_id") or None,
                custom_session_id=settings_query.get("custom_session_id"),
                allow_connection=_flag(q.get("allow_connection")),
                verbose_transcription=_flag(q.get("verbose_transcription")),
            ),
        )
    except lifecycle.ChatRefused as exc:
        raise Refused(exc.status, exc.code, exc.message) from exc
    session, resumed = opened.session, opened.resumed
    return session, resumed, settings_query or None


async def _pump(
    websocket: WebSocket,
    session: ChatSession,
    outbound: asyncio.Queue[msg.ServerMessage | None],
    *,
    observer: bool,
    revoked: asyncio.Event | None = None,
) -> None:
    """Move frames both ways until either side ends (or, for an observer, its key is revoked)."""

    async def writer() -> None:
        while (message := await outbound.get()) is not None:
            if message.type not in _NOT_STORED:
                await _stored_first(session)
            await websocket.send_text(json.dumps(message.to_dict(), separators=(",", ":")))
        if websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close(code=session.close_code, reason=session.close_reason)

    pacer, byte_pacer = _pacers(session.runtime.settings)

    async def reader() -> None:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            # A flood of tiny frames waits in TCP instead of costing the loop; one that keeps on is cut off.
            if pacer is not None and not await pacer.wait(at_most_s=FLOOD_CLOSE_S):
                log.warning("chat %s: a socket sent frames far faster than it may; closing it", session.chat_id)
                with contextlib.suppress(Exception):
                    await websocket.close(code=1008, reason="Too many messages")
                return
            text, binary = frame.get("text"), frame.get("bytes")
            if byte_pacer is not None:  # audio faster than the bound waits; it costs no memory meanwhile
                await byte_pacer.wait(cost=len(text) if text is not None else len(binary or b""))
            if text is None and binary is not None:
                # Binary frames are audio (the SDKs' microphone paths and voice-react send them so).
                if observer:
                    _refuse_observer_audio(session, outbound)
                else:
                    await session.handle_audio(binary)
                continue
            if text is None:
                continue
            data = parse_frame(text, max_bytes=session.runtime.settings.chat_max_message_bytes)
            if isinstance(data, FrameError):
                session.emit_error(data.code, data.message)
            elif is_audio(data):
                if observer:
                    _refuse_observer_audio(session, outbound)
                elif isinstance(audio := audio_input(data), FrameError):
                    session.emit_error(audio.code, audio.message)
                else:
                    await session.handle_audio(audio.audio, custom_session_id=audio.custom_session_id)
            else:
                await session.handle(data)

    tasks = [asyncio.create_task(writer()), asyncio.create_task(reader())]
    try:
        await _until_either_ends(tasks, revoked)
    finally:
        session.unsubscribe(outbound)
    await _close_if_revoked(websocket, revoked, request_id=session.request_id)


async def _until_either_ends(tasks: list[asyncio.Task[Any]], revoked: asyncio.Event | None) -> None:
    """Wait for the first of the pump's tasks (or a revocation) to finish, then stop the others."""
    if revoked is not None:
        tasks = [*tasks, asyncio.create_task(revoked.wait())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close_if_revoked(websocket: WebSocket, revoked: asyncio.Event | None, *, request_id: str | None) -> None:
    """An observer whose key was revoked is told why and closed with the policy code."""
    if revoked is None or not revoked.is_set() or websocket.client_state != WebSocketState.CONNECTED:
        return
    error = msg.Error.of(E_REVOKED, "The API key this socket was opened with has been revoked", request_id=request_id)
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_text(json.dumps(error.to_dict(), separators=(",", ":")))
        await websocket.close(code=CLOSE_CODE, reason=CLOSE_REASON)


def _refuse_observer_audio(session: ChatSession, outbound: asyncio.Queue[msg.ServerMessage | None]) -> None:
    """Only the observer that sent audio is told; the chat's own socket did nothing wrong."""
    outbound.put_nowait(
        msg.Error(
            code=AUDIO_NOT_ALLOWED.code[0],
            slug=AUDIO_NOT_ALLOWED.code[1],
            message=AUDIO_NOT_ALLOWED.message,
            request_id=session.request_id,
            custom_session_id=session.output.custom_session_id,
        )
    )


@router.websocket("/v0/evi/chat")
@router.websocket("/v0/assistant/chat")  # the legacy path Hume's raw-API and CLM examples still use
async def chat_socket(websocket: WebSocket) -> None:
    runtime: ChatRuntime = websocket.app.state.chat_runtime
    try:
        principal = await _authenticate(websocket)
        admission: ChatAdmission = websocket.app.state.chat_admission
        async with admission.admit(principal) as admitted:
            session, resumed, session_settings = await _open_chat(websocket, runtime, principal)
            admitted(session)
    except (Refused, ApiError) as refused:
        await _refuse(websocket, refused)
        return
    await websocket.accept()
    try:
        pump = asyncio.create_task(_pump(websocket, session, session.subscribe(), observer=False))
        await session.start(resumed=resumed, session_settings=session_settings)
        await pump
    except Exception:
        log.exception("chat %s failed", session.chat_id)
        await session.close(ChatStatus.ERROR, reason="internal error")
        raise
    finally:
        # The client went away (or the chat ended itself): the chat ends here.
        await session.close(ChatStatus.USER_ENDED, reason="client disconnected")


@router.websocket("/v0/evi/chat/{chat_id}/connect")
async def control_socket(websocket: WebSocket, chat_id: str) -> None:
    runtime: ChatRuntime = websocket.app.state.chat_runtime
    bus: ChatBus = websocket.app.state.bus
    not_live = Refused(404, "chat_not_live", f"No live chat with id {chat_id}")
    not_allowed = Refused(403, "connection_not_allowed", "This chat was not started with allow_connection=true")
    try:
        principal = await _authenticate(websocket)
        session = runtime.sessions.get(chat_id)
        if session is None:
            # Live on another instance, maybe: observe it through the bus.
            live = await bus.locate(chat_id)
            if live is None or live.account_id != principal.account_id:
                raise not_live
            if not live.allow_connection:
                raise not_allowed
        elif session.account_id != principal.account_id or session.status is not None:
            raise not_live
        elif not session.allow_connection:
            raise not_allowed
        observers = websocket.app.state.chat_admission.observers
        observer = observers.admit(principal, chat_id)  # counted until the socket closes (429 when full)
    except (Refused, ApiError) as refused:
        await _refuse(websocket, refused)
        return
    try:
        await _observe(websocket, runtime, bus, session, chat_id, observer.revoked)
    finally:
        observers.release(observer)


async def _observe(
    websocket: WebSocket,
    runtime: ChatRuntime,
    bus: ChatBus,
    session: ChatSession | None,
    chat_id: str,
    revoked: asyncio.Event,
) -> None:
    if session is not None:
        outbound = session.subscribe()  # before the client hears it joined, as for a remote chat
        try:
            await websocket.accept()
        except BaseException:
            session.unsubscribe(outbound)
            raise
        await _pump(websocket, session, outbound, observer=True, revoked=revoked)
        return
    max_bytes = runtime.settings.chat_max_message_bytes
    async with bus.observe(chat_id) as stream:  # subscribed before the client hears it joined
        await websocket.accept()
        await _pump_remote(websocket, bus, chat_id, stream, max_bytes=max_bytes, revoked=revoked)


async def _pump_remote(
    websocket: WebSocket,
    bus: ChatBus,
    chat_id: str,
    stream: asyncio.Queue[Observed],
    *,
    max_bytes: int,
    revoked: asyncio.Event,
) -> None:
    """An observer of a chat that lives on another instance: its stream in, `send` through the bus out."""

    def tell(code: tuple[str, str], message: str) -> None:
        # Only this observer is told (as with a local observer); a full queue is about to cut it off anyway.
        with contextlib.suppress(asyncio.QueueFull):
            stream.put_nowait(msg.Error.of(code, message).to_dict())

    async def writer() -> None:
        while not isinstance(item := await stream.get(), StreamEnd):
            await websocket.send_text(json.dumps(item, separators=(",", ":")))
        if websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close(code=item.code, reason=item.reason)

    async def reader() -> None:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            raw = frame.get("text")
            if raw is None:
                if frame.get("bytes") is not None:
                    tell(AUDIO_NOT_ALLOWED.code, AUDIO_NOT_ALLOWED.message)
                continue
            data = parse_frame(raw, max_bytes=max_bytes)
            if isinstance(data, FrameError):
                tell(data.code, data.message)
            elif is_audio(data):
                tell(AUDIO_NOT_ALLOWED.code, AUDIO_NOT_ALLOWED.message)
            elif not await bus.publish(chat_id, data):
                return  # the chat is over; its stream's end closes nothing more

    await _until_either_ends([asyncio.create_task(writer()), asyncio.create_task(reader())], revoked)
    await _close_if_revoked(websocket, revoked, request_id=None)
