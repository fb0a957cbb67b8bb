"""Outbox: payloads match the spec's webhook schemas; enqueue filters by event and joins the caller's
transaction; backoff grows exponentially within its jitter bounds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from openevi.store.db import transaction
from openevi.store.models import WebhookDelivery
from openevi.webhooks.dispatcher import backoff_s
from openevi.webhooks.outbox import (
    chat_ended_payload,
    chat_started_payload,
    enqueue,
    subscribed_urls,
    tool_call_payload,
)
from tests.support.database import migrated
from tests.webhook_receiver import check_spec


def test_chat_started_payload_matches_spec() -> None:
    p = chat_started_payload(
        chat_group_id="g",
        chat_id="c",
        config_id=None,
        start_time_ms=1_700_000_000_123,
        chat_start_type="new_chat_group",
    )
    check_spec("WebhookEventChatStarted", p)
    assert p["event_name"] == "chat_started" and p["caller_number"] is None and p["twilio_metadata"] is None
    with pytest.raises(ValueError):
        chat_started_payload(chat_group_id="g", chat_id="c", config_id=None, start_time_ms=0, chat_start_type="x")  # type: ignore[arg-type]


def test_chat_ended_payload_matches_spec() -> None:
    p = chat_ended_payload(
        chat_group_id="g",
        chat_id="c",
        config_id="cfg",
        start_time_ms=1_000,
        end_time_ms=62_600,
        end_reason="USER_ENDED",
        custom_session_id="s",
    )
    check_spec("WebhookEventChatEnded", p)
    assert p["duration_seconds"] == 62 and p["end_time"] == 62_600
    with pytest.raises(ValueError):
        chat_ended_payload(
            chat_group_id="g", chat_id="c", config_id=None, start_time_ms=0, end_time_ms=1, end_reason="BYE"
        )


def test_tool_call_payload_matches_spec() -> None:
    p = tool_call_payload(
        chat_group_id="g",
        chat_id="c",
        config_id="cfg",
        timestamp_ms=5,
        name="get_weather",
        parameters={"city": "Oslo"},
        tool_call_id="call_1",
    )
    check_spec("WebhookEventToolCall", p)
    msg = p["tool_call_message"]
    check_spec("ToolCallMessage", msg)
    assert msg["type"] == "tool_call" and json.loads(msg["parameters"]) == {"city": "Oslo"}
    assert msg["tool_type"] == "function" and msg["response_required"] is True


def test_subscribed_urls_filters_and_dedupes() -> None:
    hooks = [
        {"url": "https://a.example/h", "events": ["chat_started", "chat_ended"]},
        {"url": "https://b.example/h", "events": ["tool_call"]},
        {"url": "https://a.example/h", "events": ["chat_started"]},
        {"url": "https://c.example/h", "events": ["chat_started"]},
    ]
    assert subscribed_urls(hooks, "chat_started") == ["https://a.example/h", "https://c.example/h"]
    assert subscribed_urls(hooks, "tool_call") == ["https://b.example/h"]
    assert subscribed_urls([], "chat_ended") == []


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}") as made:
        yield made


HOOKS = [
    {"url": "https://a.example/h", "events": ["chat_started"]},
    {"url": "https://b.example/h", "events": ["chat_ended"]},
    {"url": "https://c.example/h", "events": ["chat_started", "tool_call"]},
]


def _started() -> dict[str, Any]:
    return chat_started_payload(
        chat_group_id="g", chat_id="c", config_id=None, start_time_ms=1, chat_start_type="resumed_chat_group"
    )


async def test_enqueue_writes_one_row_per_subscribed_url(factory: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(factory) as s:
        n = await enqueue(
            s, account_id="acct", chat_id="c", webhooks=HOOKS, event_name="chat_started", payload=_started()
        )
    assert n == 2
    async with factory() as s:
        rows = (await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.url))).all()
    assert [r.url for r in rows] == ["https://a.example/h", "https://c.example/h"]
    for r in rows:
        assert r.status == "PENDING" and r.attempts == 0 and r.account_id == "acct" and r.chat_id == "c"
        assert json.loads(r.payload) == _started()


async def test_enqueue_rolls_back_with_the_callers_transaction(factory: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(factory) as s:
            assert await enqueue(
                s, account_id="acct", chat_id="c", webhooks=HOOKS, event_name="chat_started", payload=_started()
            )
            raise RuntimeError("the event write failed")
    async with factory() as s:
        assert (await s.scalars(select(WebhookDelivery))).all() == []


async def test_enqueue_rejects_mismatched_event(factory: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(factory) as s:
        with pytest.raises(ValueError):
            await enqueue(s, account_id="a", chat_id=None, webhooks=HOOKS, event_name="chat_ended", payload=_started())
        with pytest.raises(ValueError):
            await enqueue(s, account_id="a", chat_id=None, webhooks=HOOKS, event_name="nope", payload={})
        assert (
            await enqueue(s, account_id="a", chat_id=None, webhooks=[], event_name="chat_started", payload=_started())
            == 0
        )


def test_backoff_doubles_and_caps() -> None:
    lo = [backoff_s(n, base_s=1, max_s=60, rand=lambda: 0.0) for n in range(1, 9)]
    hi = [backoff_s(n, base_s=1, max_s=60, rand=lambda: 1.0) for n in range(1, 9)]
    assert lo[:3] == pytest.approx([0.8, 1.6, 3.2]) and hi[:3] == pytest.approx([1.2, 2.4, 4.8])
    # With ±20% jitter consecutive ranges never overlap, so delays strictly increase until the cap.
    assert all(hi[i] < lo[i + 1] for i in range(5))
    assert hi[-1] == pytest.approx(72.0) and lo[-1] == pytest.approx(48.0)
    assert backoff_s(1, base_s=1, max_s=60, rand=lambda: 0.5) == pytest.approx(1.0)
