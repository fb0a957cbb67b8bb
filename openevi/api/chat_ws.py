"""The chat WebSocket (`/v0/evi/chat`) and the control-plane observer socket (`/chat/{id}/connect`).

The route only authenticates, opens the chat and moves frames; the ChatSession does the rest.
"""

from __future__ import annotations

import asyncio
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
from openevi.chat import messages as msg
from openevi.chat.runtime import ChatRuntime
from openevi.chat.session import USER_ENDED, ChatSession
from openevi.schemas.protocol import SessionSettings
from openevi.services.configs import load_config
from openevi.store import chats
from openevi.store.db import transaction
from openevi.store.errors import NotFoundError
from openevi.webhooks import outbox

log = logging.getLogger("openevi.api.chat_ws")
router = APIRouter()

_BRACKETS = re.compile(r"\[([^\]]*)\]")
_TRUE = {"true", "1", "yes", "on"}


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


async def _refuse(websocket: WebSocket, refused: Refused) -> None:
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
    config: dict[str, Any] | None = None
    config_id = q.get("config_id")
    version: int | None = None
    if q.get("config_version") not in (None, "", "None"):
        try:
            version = int(q["config_version"])
        except ValueError as exc:
            raise Refused(400, "invalid_config_version", "config_version must be an integer") from exc
    settings_query = nested_query(list(q.multi_items()), "session_settings")
    if settings_query:
        try:
            SessionSettings.model_validate({**settings_query, "type": "session_settings"})
        except ValidationError as exc:
            raise Refused(
                400, "invalid_session_settings", f"Invalid session_settings: {exc.errors()[0]['msg']}"
            ) from exc
    resumed_group = q.get("resumed_chat_group_id") or None
    async with transaction(runtime.db) as s:
        if config_id:
            try:
                config = await load_config(s, account_id=principal.account_id, config_id=config_id, version=version)
            except NotFoundError as exc:
                raise Refused(404, "config_not_found", str(exc)) from exc
        try:
            chat, group, resumed = await chats.start_chat(
                s,
                account_id=principal.account_id,
                config_id=config["id"] if config else None,
                config_version=config["version"] if config else None,
                resumed_chat_group_id=resumed_group,
                instance_id=runtime.instance_id,
            )
        except NotFoundError as exc:
            raise Refused(404, "chat_group_not_found", str(exc)) from exc
        await chats.append_event(
            s, chat_id=chat.id, role="SYSTEM", type="CHAT_START_MESSAGE", timestamp=chat.start_timestamp
        )
        queued = await outbox.enqueue(
            s,
            account_id=principal.account_id,
            chat_id=chat.id,
            webhooks=(config or {}).get("webhooks", []),
            event_name="chat_started",
            payload=outbox.chat_started_payload(
                chat_group_id=group.id,
                chat_id=chat.id,
                config_id=chat.config_id,
                start_time_ms=chat.start_timestamp,
                chat_start_type="resumed_chat_group" if resumed else "new_chat_group",
                custom_session_id=settings_query.get("custom_session_id"),
            ),
        )
    if queued:
        runtime.notify_webhooks()
    session = ChatSession(
        runtime,
        account_id=principal.account_id,
        config=config,
        chat_id=chat.id,
        chat_group_id=group.id,
        started_ms=chat.start_timestamp,
        allow_connection=_flag(q.get("allow_connection")),
        verbose_transcription=_flag(q.get("verbose_transcription")),
    )
    return session, resumed, settings_query or None


async def _pump(
    websocket: WebSocket, session: ChatSession, outbound: asyncio.Queue[dict[str, Any] | None], *, observer: bool
) -> None:
    """Move frames both ways until either side ends."""

    async def writer() -> None:
        while (message := await outbound.get()) is not None:
            await websocket.send_text(json.dumps(message, separators=(",", ":")))
        if websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close(code=1000)

    async def reader() -> None:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            raw = frame.get("text") if frame.get("text") is not None else frame.get("bytes")
            if raw is None:
                continue
            if observer and _is_audio(raw):
                # Only the observer that sent it is told; the chat's own socket did nothing wrong.
                error = msg.error(
                    code="E0103",
                    slug="audio_not_allowed",
                    message="Control-plane sockets cannot send audio_input",
                    request_id=session.request_id,
                )
                if session.custom_session_id is not None:
                    error["custom_session_id"] = session.custom_session_id
                outbound.put_nowait(error)
                continue
            await session.handle_raw(raw)

    tasks = [asyncio.create_task(writer()), asyncio.create_task(reader())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        session.unsubscribe(outbound)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _is_audio(raw: str | bytes) -> bool:
    try:
        return bool(json.loads(raw).get("type") == "audio_input")
    except (ValueError, AttributeError):
        return False


@router.websocket("/v0/evi/chat")
async def chat_socket(websocket: WebSocket) -> None:
    runtime: ChatRuntime = websocket.app.state.chat_runtime
    try:
        principal = await _authenticate(websocket)
        session, resumed, session_settings = await _open_chat(websocket, runtime, principal)
    except Refused as refused:
        await _refuse(websocket, refused)
        return
    await websocket.accept()
    try:
        pump = asyncio.create_task(_pump(websocket, session, session.subscribe(), observer=False))
        await session.start(resumed=resumed, session_settings=session_settings)
        await pump
    except Exception:
        log.exception("chat %s failed", session.chat_id)
        await session.close("ERROR", reason="internal error")
        raise
    finally:
        # The client went away (or the chat ended itself): the chat ends here.
        await session.close(USER_ENDED, reason="client disconnected")


@router.websocket("/v0/evi/chat/{chat_id}/connect")
async def control_socket(websocket: WebSocket, chat_id: str) -> None:
    runtime: ChatRuntime = websocket.app.state.chat_runtime
    try:
        principal = await _authenticate(websocket)
        session = runtime.sessions.get(chat_id)
        if session is None or session.account_id != principal.account_id or session.status is not None:
            raise Refused(404, "chat_not_live", f"No live chat with id {chat_id}")
        if not session.allow_connection:
            raise Refused(403, "connection_not_allowed", "This chat was not started with allow_connection=true")
    except Refused as refused:
        await _refuse(websocket, refused)
        return
    await websocket.accept()
    await _pump(websocket, session, session.subscribe(), observer=True)
