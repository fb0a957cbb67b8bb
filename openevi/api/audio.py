"""Audio reconstruction of chats and chat groups, and the signed download of the result.

The download URL is the store's own presigned URL (S3), or for a local store openevi's HMAC-signed
URL, which any instance that can read the store's directory serves.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from openevi.api.deps import Caller, Db, PageDep
from openevi.api.errors import ApiError, NotFound
from openevi.audio import urls
from openevi.audio.reconstruction import RECONSTRUCTION
from openevi.audio.worker import ReconstructionWorker
from openevi.services.chat_views import reconstruction_view
from openevi.services.views import paged
from openevi.storage import RecordingStore, recording_key
from openevi.store import chats
from openevi.store.chats import PageQuery
from openevi.store.db import transaction
from openevi.store.models import AudioReconstruction, Chat

router = APIRouter(prefix="/v0/evi", tags=["audio"])
URL_TTL_S = 3600


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


def _store(request: Request) -> RecordingStore:
    return cast(RecordingStore, request.app.state.recording_store)


async def _signed(request: Request, chat: Chat, rec: AudioReconstruction | None) -> tuple[str, int] | None:
    if rec is None or rec.status != "COMPLETE":
        return None
    presigned = await _store(request).presigned_url(
        recording_key(chat.id, RECONSTRUCTION), ttl_s=URL_TTL_S, filename=f"{chat.id}.wav"
    )
    if presigned is not None:
        return presigned
    path, expires_ms = urls.sign(request.app.state.audio_url_secret, chat.id, ttl_s=URL_TTL_S)
    base = request.app.state.settings.public_url or str(request.base_url).rstrip("/")
    return f"{base.rstrip('/')}{path}", expires_ms


def _worker(request: Request) -> ReconstructionWorker:
    return cast(ReconstructionWorker, request.app.state.reconstructions)


@router.get("/chats/{id}/audio", operation_id="get-audio")
async def get_chat_audio(id: str, caller: Caller, db: Db, request: Request) -> dict[str, Any]:
    async with transaction(db) as s:
        chat = await chats.get_chat(s, account_id=caller.account_id, chat_id=id)
        rec = await chats.request_reconstruction(s, account_id=caller.account_id, chat_id=id)
    _worker(request).notify()
    return reconstruction_view(chat, rec, signed_url=await _signed(request, chat, rec))


@router.get("/chat_groups/{id}/audio", operation_id="get-chat-group-audio")
async def get_chat_group_audio(
    id: str, caller: Caller, db: Db, page: PageDep, request: Request, ascending_order: Annotated[bool, Query()] = True
) -> dict[str, Any]:
    q = PageQuery(page.number, page.size, ascending_order)
    async with transaction(db) as s:
        group = await chats.get_chat_group(s, account_id=caller.account_id, group_id=id)
        listed, total = await chats.group_reconstructions(s, account_id=caller.account_id, group_id=id, page=q)
        pairs = [
            (c, r or await chats.request_reconstruction(s, account_id=caller.account_id, chat_id=c.id))
            for c, r in listed
        ]
    _worker(request).notify()
    body = paged(
        "audio_reconstructions_page",
        [reconstruction_view(c, r, signed_url=await _signed(request, c, r)) for c, r in pairs],
        page_number=page.number,
        page_size=page.size,
        total=total,
    )
    return {
        "id": group.id,
        "user_id": caller.account_id,
        "num_chats": group.num_chats,
        **body,
        "pagination_direction": "ASC" if ascending_order else "DESC",
    }


@router.get("/audio/{chat_id}.wav", include_in_schema=False)
async def download_audio(chat_id: str, request: Request, expires: int = 0, signature: str = "") -> Response:
    """The signed URL itself is the credential (no API key), as hosted EVI's signed URLs were."""
    if not urls.verify(request.app.state.audio_url_secret, chat_id, expires, signature):
        raise Forbidden("This audio URL is invalid or has expired", code="invalid_signature")
    store = _store(request)
    key = recording_key(chat_id, RECONSTRUCTION)
    path = store.local_path(key)
    if path is None:
        # A URL handed out before the deployment moved to object storage: send the client on to the store.
        presigned = await store.presigned_url(key, ttl_s=60, filename=f"{chat_id}.wav")
        if presigned is None:
            raise NotFound("No reconstructed audio for this chat")
        return RedirectResponse(presigned[0], status_code=307)
    if not path.exists():
        raise NotFound("No reconstructed audio for this chat")
    return FileResponse(path, media_type="audio/wav", filename=f"{chat_id}.wav")
