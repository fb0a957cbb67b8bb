"""Transactional outbox: webhook deliveries are rows written in the same transaction as their event.

The chat engine calls `enqueue()` inside the unit of work that records the event, so either both commit
or neither does; the dispatcher (openevi.webhooks.dispatcher) delivers committed rows later, retrying
until they succeed or run out of attempts. Payload builders produce exactly the spec's webhook bodies.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from openevi.schemas.chat_types import ChatStatus
from openevi.store.db import new_id, now_ms
from openevi.store.models import WebhookDelivery

EventName = Literal["chat_started", "chat_ended", "tool_call"]
EVENT_NAMES: Final = frozenset({"chat_started", "chat_ended", "tool_call"})
ChatStartType = Literal["new_chat_group", "resumed_chat_group"]
# The webhook's status enum is the chat's plus SILENCE_TIMEOUT (spec: WebhookEventChatStatus).
END_REASONS: Final = frozenset({*(str(s) for s in ChatStatus), "SILENCE_TIMEOUT"})

PENDING: Final = "PENDING"
DELIVERED: Final = "DELIVERED"
FAILED: Final = "FAILED"


JITTER: Final = 0.2  # ±20%: spreads retries of many deliveries yet keeps consecutive delays strictly increasing


def backoff_s(
    attempts: int, *, base_s: float, max_s: float, jitter: float = JITTER, rand: Callable[[], float] = random.random
) -> float:
    """Delay before the next try after `attempts` failed tries: base·2^(attempts-1), capped, ± jitter."""
    raw: float = min(max_s, base_s * float(2 ** max(0, attempts - 1)))
    return max(0.0, raw * (1 + jitter * (2 * rand() - 1)))


def next_attempt_at(
    failed_at_ms: int,
    attempts: int,
    *,
    base_s: float,
    max_s: float,
    rand: Callable[[], float] = random.random,
) -> int:
    """When to try again (Unix ms) after failed attempt number `attempts` ended at `failed_at_ms`.

    The delay counts from the end of the failed attempt, as docs/webhooks.md documents.
    """
    return failed_at_ms + round(backoff_s(attempts, base_s=base_s, max_s=max_s, rand=rand) * 1000)


def subscribed_urls(webhooks: Iterable[Mapping[str, Any]], event_name: str) -> list[str]:
    """URLs of a rendered config's `webhooks` subscribed to `event_name`, each once, in config order."""
    urls: list[str] = []
    for hook in webhooks:
        url = hook.get("url")
        if isinstance(url, str) and url and event_name in (hook.get("events") or ()) and url not in urls:
            urls.append(url)
    return urls


def encode_payload(payload: Mapping[str, Any]) -> str:
    """The exact body that is stored, signed and sent (compact JSON, UTF-8 kept as-is)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


async def enqueue(
    session: AsyncSession,
    *,
    account_id: str,
    chat_id: str | None,
    webhooks: list[dict[str, Any]],
    event_name: str,
    payload: dict[str, Any],
) -> int:
    """Add one PENDING delivery per URL subscribed to `event_name`, in the caller's transaction.

    Returns how many rows were added. Call the dispatcher's `notify()` after the transaction commits
    (not before: a wake-up before commit finds nothing and the delivery waits for the next poll).
    """
    if event_name not in EVENT_NAMES:
        raise ValueError(f"unknown webhook event {event_name!r}")
    if payload.get("event_name", event_name) != event_name:
        raise ValueError(f"payload is for {payload.get('event_name')!r}, not {event_name!r}")
    urls = subscribed_urls(webhooks, event_name)
    if not urls:
        return 0
    body = encode_payload(payload)
    now = now_ms()
    for url in urls:
        session.add(
            WebhookDelivery(
                id=new_id(),
                account_id=account_id,
                chat_id=chat_id,
                url=url,
                event_name=event_name,
                payload=body,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    await session.flush()
    return len(urls)


def _about_chat(
    event_name: str,
    chat_group_id: str,
    chat_id: str,
    config_id: str | None,
    caller_number: str | None,
    custom_session_id: str | None,
    twilio_metadata: dict[str, str] | None,
) -> dict[str, Any]:
    """The fields every webhook event starts with: which event, and which chat it is about."""
    return {
        "event_name": event_name,
        "chat_group_id": chat_group_id,
        "chat_id": chat_id,
        "config_id": config_id,
        "caller_number": caller_number,
        "custom_session_id": custom_session_id,
        "twilio_metadata": twilio_metadata,
    }


def _check_start_type(value: str) -> None:
    if value not in ("new_chat_group", "resumed_chat_group"):
        raise ValueError(f"chat_start_type must be new_chat_group or resumed_chat_group, not {value!r}")


def chat_started_payload(
    *,
    chat_group_id: str,
    chat_id: str,
    config_id: str | None,
    start_time_ms: int,
    chat_start_type: ChatStartType,
    custom_session_id: str | None = None,
    caller_number: str | None = None,
    twilio_metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Body of `chat_started` (spec: WebhookEventChatStarted)."""
    _check_start_type(chat_start_type)
    return {
        **_about_chat(
            "chat_started", chat_group_id, chat_id, config_id, caller_number, custom_session_id, twilio_metadata
        ),
        "start_time": int(start_time_ms),
        "chat_start_type": chat_start_type,
    }


def chat_ended_payload(
    *,
    chat_group_id: str,
    chat_id: str,
    config_id: str | None,
    start_time_ms: int,
    end_time_ms: int,
    end_reason: str,
    custom_session_id: str | None = None,
    caller_number: str | None = None,
    twilio_metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Body of `chat_ended` (spec: WebhookEventChatEnded); duration is whole seconds, rounded."""
    if end_reason not in END_REASONS:
        raise ValueError(f"end_reason must be one of {sorted(END_REASONS)}, not {end_reason!r}")
    return {
        **_about_chat(
            "chat_ended", chat_group_id, chat_id, config_id, caller_number, custom_session_id, twilio_metadata
        ),
        "end_time": int(end_time_ms),
        "duration_seconds": max(0, round((end_time_ms - start_time_ms) / 1000)),
        "end_reason": end_reason,
    }


def tool_call_payload(
    *,
    chat_group_id: str,
    chat_id: str,
    config_id: str | None,
    timestamp_ms: int,
    name: str,
    parameters: str | Mapping[str, Any],
    tool_call_id: str,
    tool_type: Literal["function", "builtin"] = "function",
    response_required: bool = True,
    custom_session_id: str | None = None,
    caller_number: str | None = None,
    twilio_metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Body of `tool_call` (spec: WebhookEventToolCall); `parameters` is sent as a JSON string."""
    if tool_type not in ("function", "builtin"):
        raise ValueError(f"tool_type must be function or builtin, not {tool_type!r}")
    params = parameters if isinstance(parameters, str) else json.dumps(dict(parameters))
    return {
        **_about_chat(
            "tool_call", chat_group_id, chat_id, config_id, caller_number, custom_session_id, twilio_metadata
        ),
        "timestamp": int(timestamp_ms),
        "tool_call_message": {
            "type": "tool_call",
            "name": name,
            "parameters": params,
            "tool_call_id": tool_call_id,
            "tool_type": tool_type,
            "response_required": response_required,
            "custom_session_id": custom_session_id,
        },
    }
