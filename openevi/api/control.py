"""`POST /v0/evi/chat/{chat_id}/send`: control a live chat from a backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from openevi.api.deps import Caller, Db
from openevi.api.errors import NotFound
from openevi.bus.base import ChatBus
from openevi.schemas.protocol import ControlMessage
from openevi.store import chats
from openevi.store.chats import ACTIVE
from openevi.store.errors import NotFoundError

router = APIRouter(prefix="/v0/evi/chat", tags=["control plane"])


@router.post("/{chat_id}/send", operation_id="send")
async def send(chat_id: str, body: ControlMessage, caller: Caller, db: Db, request: Request) -> dict[str, Any]:
    not_live = NotFound(f"No live chat with id {chat_id}", code="chat_not_live")
    async with db() as s:
        try:
            chat = await chats.get_chat(s, account_id=caller.account_id, chat_id=chat_id)
        except NotFoundError:
            raise not_live from None
    if chat.status != ACTIVE:
        raise not_live
    bus: ChatBus = request.app.state.bus
    if not await bus.publish(chat_id, body.model_dump(mode="json", exclude_none=True)):
        raise not_live
    return {}
