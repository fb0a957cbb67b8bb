"""Chat history: chats and events written through the store (as the chat engine does), read via the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hume.core.api_error import ApiError

from openevi.store import chats
from openevi.store.db import now_ms
from tests.integration.support import (
    account_of,
    assert_validation_error,
    async_client,
    http,
    new_account_key,
    run_async,
    store,
    sync_client,
    validate_spec,
)
from tests.server import ServerProcess

RECONSTRUCTION_STATES = {"QUEUED", "IN_PROGRESS", "COMPLETE", "ERROR", "CANCELLED"}


@dataclass
class History:
    """What the fixture wrote.

    group_a: chat_1 (config v0, USER_ENDED, 5 events) then chat_3 resumed into it (config v1, ACTIVE, 2 events)
    group_b: chat_2 (no config, ERROR, 1 event)
    Start order: chat_1 < chat_2 < chat_3.
    """

    key: str
    account_id: str
    config_id: str
    group_a: str = ""
    group_b: str = ""
    chat_1: str = ""
    chat_2: str = ""
    chat_3: str = ""
    events: dict[str, list[str]] = field(default_factory=dict)
    base: int = 0


async def _write(server: ServerProcess, history: History) -> None:
    base = now_ms() - 3_600_000
    history.base = base
    async with store(server) as s:
        history.account_id = await account_of(s, history.key)
        chat_1, group_a, _ = await chats.start_chat(
            s, account_id=history.account_id, config_id=history.config_id, config_version=0, metadata='{"k": 1}'
        )
        chat_1.start_timestamp = group_a.first_start_timestamp = group_a.most_recent_start_timestamp = base
        texts = [("USER", "USER_MESSAGE", "hi"), ("AGENT", "AGENT_MESSAGE", "hello")] * 2
        texts.insert(0, ("SYSTEM", "CHAT_START_MESSAGE", None))
        history.events[chat_1.id] = []
        for i, (role, kind, text) in enumerate(texts):
            event = await chats.append_event(
                s, chat_id=chat_1.id, role=role, type=kind, message_text=text, timestamp=base + 10 * (i + 1)
            )
            history.events[chat_1.id].append(event.id)
        await chats.end_chat(s, chat_id=chat_1.id, status="USER_ENDED", end_timestamp=base + 100)

        chat_2, group_b, _ = await chats.start_chat(
            s, account_id=history.account_id, config_id=None, config_version=None
        )
        chat_2.start_timestamp = group_b.first_start_timestamp = group_b.most_recent_start_timestamp = base + 1000
        event = await chats.append_event(
            s, chat_id=chat_2.id, role="SYSTEM", type="CHAT_START_MESSAGE", timestamp=base + 1001
        )
        history.events[chat_2.id] = [event.id]
        await chats.end_chat(s, chat_id=chat_2.id, status="ERROR", end_timestamp=base + 1100)

        chat_3, group, resumed = await chats.start_chat(
            s,
            account_id=history.account_id,
            config_id=history.config_id,
            config_version=1,
            resumed_chat_group_id=group_a.id,
        )
        assert resumed and group.id == group_a.id
        chat_3.start_timestamp = group.most_recent_start_timestamp = base + 2000
        history.events[chat_3.id] = []
        for i, (role, kind) in enumerate([("USER", "USER_MESSAGE"), ("AGENT", "AGENT_MESSAGE")]):
            event = await chats.append_event(
                s, chat_id=chat_3.id, role=role, type=kind, message_text=f"m{i}", timestamp=base + 2001 + i
            )
            history.events[chat_3.id].append(event.id)
        await s.flush()
        history.group_a, history.group_b = group_a.id, group_b.id
        history.chat_1, history.chat_2, history.chat_3 = chat_1.id, chat_2.id, chat_3.id


@pytest.fixture(scope="module")
def history(server: ServerProcess) -> History:
    key = new_account_key(server, "history")
    with http(server, key) as raw:
        made = raw.post("/v0/evi/configs", json={"name": "history-config", "evi_version": "3"}).json()
        assert raw.post(f"/v0/evi/configs/{made['id']}", json={"evi_version": "3"}).status_code == 201
    found = History(key=key, account_id="", config_id=made["id"])
    run_async(_write(server, found))
    return found


@pytest.fixture
def raw(server: ServerProcess, history: History) -> Iterator[httpx.Client]:
    with http(server, history.key) as client:
        yield client


def test_list_chats_order_filters_and_paging(server: ServerProcess, history: History) -> None:
    ev = sync_client(server, history.key).empathic_voice
    h = history
    ascending = ev.chats.list_chats()
    assert [c.id for c in ascending] == [h.chat_1, h.chat_2, h.chat_3]
    assert ascending.response.pagination_direction == "ASC"
    descending = ev.chats.list_chats(ascending_order=False)
    assert [c.id for c in descending] == [h.chat_3, h.chat_2, h.chat_1]
    assert descending.response.pagination_direction == "DESC"

    first = ev.chats.list_chats(page_size=2)
    assert first.response.total_pages == 2 and [c.id for c in first.response.chats_page] == [h.chat_1, h.chat_2]
    assert [c.id for c in ev.chats.list_chats(page_size=2, page_number=1).response.chats_page] == [h.chat_3]
    assert [c.id for c in ev.chats.list_chats(page_size=1)] == [h.chat_1, h.chat_2, h.chat_3]

    assert [c.id for c in ev.chats.list_chats(config_id=h.config_id)] == [h.chat_1, h.chat_3]
    assert [c.id for c in ev.chats.list_chats(status="ACTIVE")] == [h.chat_3]
    assert [c.id for c in ev.chats.list_chats(status="USER_ENDED")] == [h.chat_1]
    assert [c.id for c in ev.chats.list_chats(status="ERROR", ascending_order=False)] == [h.chat_2]
    assert list(ev.chats.list_chats(status="USER_TIMEOUT")) == []

    by_id = {c.id: c for c in ev.chats.list_chats()}
    one = by_id[h.chat_1]
    assert (one.status, one.chat_group_id, one.event_count) == ("USER_ENDED", h.group_a, 5)
    assert (one.start_timestamp, one.end_timestamp, one.metadata) == (h.base, h.base + 100, '{"k": 1}')
    assert one.config is not None and (one.config.id, one.config.version) == (h.config_id, 0)
    three = by_id[h.chat_3]
    assert (three.status, three.end_timestamp, three.chat_group_id) == ("ACTIVE", None, h.group_a)
    assert three.config is not None and three.config.version == 1
    assert by_id[h.chat_2].config is None


async def test_list_chats_async(server: ServerProcess, history: History) -> None:
    ev = async_client(server, history.key).empathic_voice
    pager = await ev.chats.list_chats(page_size=2, ascending_order=False)
    assert [c.id async for c in pager] == [history.chat_3, history.chat_2, history.chat_1]
    filtered = await ev.chats.list_chats(config_id=history.config_id, status="USER_ENDED")
    assert [c.id async for c in filtered] == [history.chat_1]


def test_list_chat_events(server: ServerProcess, history: History) -> None:
    ev = sync_client(server, history.key).empathic_voice
    expected = history.events[history.chat_1]
    pager = ev.chats.list_chat_events(id=history.chat_1, page_size=2)
    assert pager.response.total_pages == 3
    assert (pager.response.id, pager.response.status, pager.response.chat_group_id) == (
        history.chat_1,
        "USER_ENDED",
        history.group_a,
    )
    assert [e.id for e in pager.response.events_page] == expected[:2]
    assert [e.id for e in pager] == expected
    assert [e.id for e in ev.chats.list_chat_events(id=history.chat_1, ascending_order=False)] == expected[::-1]
    events = list(ev.chats.list_chat_events(id=history.chat_1))
    assert [(e.role, e.type, e.message_text) for e in events[:3]] == [
        ("SYSTEM", "CHAT_START_MESSAGE", None),
        ("USER", "USER_MESSAGE", "hi"),
        ("AGENT", "AGENT_MESSAGE", "hello"),
    ]
    assert all(e.chat_id == history.chat_1 for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    with pytest.raises(ApiError) as missing:
        ev.chats.list_chat_events(id="9f4c8f1e-0000-4000-8000-000000000000")
    assert missing.value.status_code == 404


async def test_list_chat_events_async(server: ServerProcess, history: History) -> None:
    ev = async_client(server, history.key).empathic_voice
    pager = await ev.chats.list_chat_events(id=history.chat_3, page_size=1)
    assert [e.id async for e in pager] == history.events[history.chat_3]


def test_chat_groups(server: ServerProcess, history: History) -> None:
    ev = sync_client(server, history.key).empathic_voice
    h = history
    groups = ev.chat_groups.list_chat_groups()
    assert [g.id for g in groups] == [h.group_a, h.group_b]
    assert groups.response.pagination_direction == "ASC"
    assert [g.id for g in ev.chat_groups.list_chat_groups(ascending_order=False)] == [h.group_b, h.group_a]
    assert [g.id for g in ev.chat_groups.list_chat_groups(page_size=1)] == [h.group_a, h.group_b]
    assert [g.id for g in ev.chat_groups.list_chat_groups(config_id=h.config_id)] == [h.group_a]

    a = {g.id: g for g in ev.chat_groups.list_chat_groups()}[h.group_a]
    assert (a.num_chats, a.active, a.most_recent_chat_id) == (2, True, h.chat_3)
    assert (a.first_start_timestamp, a.most_recent_start_timestamp) == (h.base, h.base + 2000)
    assert a.most_recent_config is not None and a.most_recent_config.version == 1
    b = {g.id: g for g in ev.chat_groups.list_chat_groups()}[h.group_b]
    assert (b.num_chats, b.active, b.most_recent_config) == (1, False, None)

    group = ev.chat_groups.get_chat_group(id=h.group_a)
    assert (group.id, group.num_chats, group.active) == (h.group_a, 2, True)
    assert [c.id for c in group.chats_page] == [h.chat_1, h.chat_3]
    assert [c.id for c in ev.chat_groups.get_chat_group(id=h.group_a, status="ACTIVE").chats_page] == [h.chat_3]
    assert [c.id for c in ev.chat_groups.get_chat_group(id=h.group_a, status="USER_ENDED").chats_page] == [h.chat_1]
    assert ev.chat_groups.get_chat_group(id=h.group_a, status="ERROR").chats_page == []
    newest_first = ev.chat_groups.get_chat_group(id=h.group_a, ascending_order=False, page_size=1)
    assert [c.id for c in newest_first.chats_page] == [h.chat_3] and newest_first.total_pages == 2

    events = ev.chat_groups.list_chat_group_events(id=h.group_a, page_size=3)
    assert events.response.id == h.group_a and events.response.total_pages == 3
    assert [e.id for e in events] == h.events[h.chat_1] + h.events[h.chat_3]
    reversed_events = ev.chat_groups.list_chat_group_events(id=h.group_a, ascending_order=False)
    assert [e.id for e in reversed_events] == (h.events[h.chat_1] + h.events[h.chat_3])[::-1]
    assert [e.id for e in ev.chat_groups.list_chat_group_events(id=h.group_b)] == h.events[h.chat_2]


async def test_chat_groups_async(server: ServerProcess, history: History) -> None:
    ev = async_client(server, history.key).empathic_voice
    pager = await ev.chat_groups.list_chat_groups(ascending_order=False)
    assert [g.id async for g in pager] == [history.group_b, history.group_a]
    group = await ev.chat_groups.get_chat_group(id=history.group_b)
    assert [c.id for c in group.chats_page] == [history.chat_2]
    events = await ev.chat_groups.list_chat_group_events(id=history.group_a, page_size=2)
    assert len([e async for e in events]) == 7


def test_audio_reconstructions(server: ServerProcess, history: History) -> None:
    ev = sync_client(server, history.key).empathic_voice
    audio = ev.chats.get_audio(id=history.chat_1)
    assert (audio.id, audio.status, audio.user_id) == (history.chat_1, "QUEUED", history.account_id)
    assert audio.signed_audio_url is None
    # A background worker may move it on (this chat has no recorded audio), never back to unknown.
    again = ev.chats.get_audio(id=history.chat_1)
    assert again.id == history.chat_1 and again.status in RECONSTRUCTION_STATES

    group_audio = ev.chat_groups.get_audio(id=history.group_a)
    assert group_audio.id == history.group_a and group_audio.num_chats == 2
    assert group_audio.user_id == history.account_id
    page = group_audio.audio_reconstructions_page
    assert [r.id for r in page] == [history.chat_1, history.chat_3]
    assert all(r.status in RECONSTRUCTION_STATES for r in page)
    assert [r.id for r in ev.chat_groups.get_audio(id=history.group_a, page_size=1).audio_reconstructions_page] == [
        history.chat_1
    ]
    with pytest.raises(ApiError) as missing:
        ev.chats.get_audio(id="9f4c8f1e-0000-4000-8000-000000000000")
    assert missing.value.status_code == 404


def test_raw_history_matches_the_spec(raw: httpx.Client, history: History) -> None:
    h = history
    checks = [
        ("/v0/evi/chats", "return_paged_chats"),
        (f"/v0/evi/chats/{h.chat_1}", "return_chat_paged_events"),
        (f"/v0/evi/chats/{h.chat_3}", "return_chat_paged_events"),
        (f"/v0/evi/chats/{h.chat_2}/audio", "ReturnChatAudioReconstruction"),
        ("/v0/evi/chat_groups", "return_paged_chat_groups"),
        (f"/v0/evi/chat_groups/{h.group_a}", "return_chat_group_paged_chats"),
        (f"/v0/evi/chat_groups/{h.group_a}/events", "return_chat_group_paged_events"),
        (f"/v0/evi/chat_groups/{h.group_b}/audio", "return_chat_group_paged_audio_reconstructions"),
    ]
    for path, component in checks:
        response = raw.get(path)
        assert response.status_code == 200, (path, response.text)
        validate_spec(component, response.json())


def test_bad_history_filters_are_422(raw: httpx.Client, history: History) -> None:
    assert_validation_error(raw.get("/v0/evi/chats", params={"status": "FINISHED"}))
    assert_validation_error(raw.get(f"/v0/evi/chat_groups/{history.group_a}", params={"status": "done"}))
    assert_validation_error(raw.get("/v0/evi/chats", params={"ascending_order": "sideways"}))


def test_send_to_a_chat_with_no_live_socket_is_404(raw: httpx.Client, history: History) -> None:
    for chat_id in (history.chat_1, history.chat_3):
        response = raw.post(f"/v0/evi/chat/{chat_id}/send", json={"type": "user_input", "text": "hello"})
        assert response.status_code == 404, response.text


def test_ties_in_time_page_in_a_stable_order(server: ServerProcess) -> None:
    """Events written in one millisecond (and chats started in one) keep one order across pages."""
    key = new_account_key(server, "ties")
    at = now_ms() - 60_000

    async def write() -> tuple[list[str], list[str], str]:
        async with store(server) as s:
            account_id = await account_of(s, key)
            chat, group, _ = await chats.start_chat(s, account_id=account_id, config_id=None, config_version=None)
            chat.start_timestamp = group.first_start_timestamp = group.most_recent_start_timestamp = at
            events = [
                (await chats.append_event(s, chat_id=chat.id, role="USER", type="USER_MESSAGE", timestamp=at)).id
                for _ in range(6)
            ]
            others = []
            for _ in range(4):
                other, other_group, _ = await chats.start_chat(
                    s, account_id=account_id, config_id=None, config_version=None
                )
                other.start_timestamp = other_group.first_start_timestamp = at + 5
                others.append(other.id)
            await s.flush()
            return events, others, group.id

    events, others, group_id = run_async(write())
    ev = sync_client(server, key).empathic_voice
    # One row per page: every page boundary falls inside the tie.
    assert [e.id for e in ev.chat_groups.list_chat_group_events(id=group_id, page_size=1)] == events
    newest_first = ev.chat_groups.list_chat_group_events(id=group_id, page_size=1, ascending_order=False)
    assert [e.id for e in newest_first] == events[::-1]
    listed = [c.id for c in ev.chats.list_chats(page_size=1)]
    assert listed[1:] == sorted(others)  # same start: by id
