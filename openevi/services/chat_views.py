"""Chat rows → the spec's chat, chat group, event and audio reconstruction objects."""

from __future__ import annotations

from typing import Any

from openevi.store.models import AudioReconstruction, Chat, ChatEvent, ChatGroup


def chat_view(chat: Chat) -> dict[str, Any]:
    """return_chat."""
    view: dict[str, Any] = {
        "id": chat.id,
        "chat_group_id": chat.chat_group_id,
        "status": chat.status,
        "start_timestamp": chat.start_timestamp,
        "end_timestamp": chat.end_timestamp,
        "event_count": chat.event_count,
        "metadata": chat.chat_metadata,
    }
    if chat.config_id is not None:  # return_config_spec is not nullable: absent when no config
        view["config"] = {"id": chat.config_id, "version": chat.config_version}
    return view


def event_view(event: ChatEvent) -> dict[str, Any]:
    """return_chat_event."""
    return {
        "id": event.id,
        "chat_id": event.chat_id,
        "timestamp": event.timestamp,
        "role": event.role,
        "type": event.type,
        "message_text": event.message_text,
        "emotion_features": event.emotion_features,
        "metadata": event.event_metadata,
        "related_event_id": event.related_event_id,
    }


def group_summary(group: ChatGroup) -> dict[str, Any]:
    """The fields shared by return_chat_group and return_chat_group_paged_chats."""
    return {
        "id": group.id,
        "first_start_timestamp": group.first_start_timestamp,
        "most_recent_start_timestamp": group.most_recent_start_timestamp,
        "num_chats": group.num_chats,
        "active": group.active,
    }


def group_view(group: ChatGroup) -> dict[str, Any]:
    """return_chat_group."""
    view = group_summary(group)
    view["most_recent_chat_id"] = group.most_recent_chat_id
    if group.most_recent_config_id is not None:
        view["most_recent_config"] = {
            "id": group.most_recent_config_id,
            "version": group.most_recent_config_version,
        }
    return view


def reconstruction_view(
    chat: Chat, rec: AudioReconstruction | None, *, signed_url: tuple[str, int] | None = None
) -> dict[str, Any]:
    """ReturnChatAudioReconstruction; a chat never asked for has no status change yet (QUEUED)."""
    return {
        "id": chat.id,
        "user_id": chat.account_id,
        "status": rec.status if rec else "QUEUED",
        "filename": rec.filename if rec else None,
        "modified_at": rec.modified_at if rec else None,
        "signed_audio_url": signed_url[0] if signed_url else None,
        "signed_url_expiration_timestamp_millis": signed_url[1] if signed_url else None,
    }
