"""Webhooks caused by live chats (chat_started, tool_call, chat_ended), delivered to a local receiver
in the spec's shapes and signed as docs/webhooks.md says."""

from __future__ import annotations

import json

from hume.empathic_voice import ToolResponseMessage, UserInput
from hume.empathic_voice.types import ConnectSessionSettings

from tests.integration.chat_support import client_for, last_is, of_type, recv_until
from tests.integration.live_support import (
    history,
    make_config,
    make_tool,
    signing_secret,
    verify_signature,
    wait_webhook,
    webhook_bodies,
)
from tests.server import ServerProcess
from tests.support.scripted_llm import CallTool, Reply, ScriptedLLM
from tests.webhook_receiver import Receiver, check_spec

EVENTS = ["chat_started", "chat_ended", "tool_call"]


async def test_chat_webhooks_are_delivered_and_signed(
    chat_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    client = client_for(chat_server)
    tool = await make_tool(client, "check_stock", {"type": "object", "properties": {"sku": {"type": "string"}}})
    config_id = await make_config(
        chat_server, tools=[tool], webhooks=[{"url": receiver.url("/chat-hooks"), "events": EVENTS}]
    )
    llm.script(
        CallTool("check_stock", {"sku": "X-1"}, call_id="call_stock", when=last_is("user")),
        Reply("Three left.", when=last_is("tool")),
    )
    settings = ConnectSessionSettings(custom_session_id="hook-sess")
    async with client.empathic_voice.chat.connect(config_id=config_id, session_settings=settings) as socket:
        first = await socket.recv()
        await socket.send_publish(UserInput(text="is X-1 in stock?"))
        await recv_until(socket, "tool_call")
        await socket.send_publish(ToolResponseMessage(tool_call_id="call_stock", content="3"))
        answer = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(answer, "assistant_message")] == ["Three left."]
    await history(client, first.chat_id)
    async with client.empathic_voice.chat.connect(config_id=config_id, resumed_chat_group_id=first.chat_group_id) as s2:
        second = await s2.recv()
    await history(client, second.chat_id)

    started_req, started = await wait_webhook(receiver, "chat_started", first.chat_id)
    tool_req, tool_call = await wait_webhook(receiver, "tool_call", first.chat_id)
    ended_req, ended = await wait_webhook(receiver, "chat_ended", first.chat_id)
    resumed_req, resumed = await wait_webhook(receiver, "chat_started", second.chat_id)
    ended2_req, ended2 = await wait_webhook(receiver, "chat_ended", second.chat_id)

    check_spec("WebhookEventChatStarted", started)
    assert (started["chat_start_type"], started["chat_group_id"], started["config_id"]) == (
        "new_chat_group",
        first.chat_group_id,
        config_id,
    )
    assert started["custom_session_id"] == "hook-sess"
    check_spec("WebhookEventChatStarted", resumed)
    assert (resumed["chat_start_type"], resumed["chat_group_id"]) == ("resumed_chat_group", first.chat_group_id)

    check_spec("WebhookEventToolCall", tool_call)
    message = tool_call["tool_call_message"]
    assert (message["name"], message["tool_call_id"], message["tool_type"], message["response_required"]) == (
        "check_stock",
        "call_stock",
        "function",
        True,
    )
    assert json.loads(message["parameters"]) == {"sku": "X-1"}
    assert tool_call["custom_session_id"] == "hook-sess"

    for body in (ended, ended2):
        check_spec("WebhookEventChatEnded", body)
        assert body["end_reason"] == "USER_ENDED" and body["end_time"] >= 0 and body["duration_seconds"] >= 0
    assert ended["custom_session_id"] == "hook-sess" and ended["chat_group_id"] == first.chat_group_id
    assert ended["end_time"] >= started["start_time"]

    secret = await signing_secret(chat_server)
    for request in (started_req, tool_req, ended_req, resumed_req, ended2_req):
        assert request.path == "/chat-hooks"
        assert request.headers["x-openevi-event"] == json.loads(request.body)["event_name"]
        verify_signature(secret, request)
    # one delivery per event (no duplicates from the same chat)
    assert len(webhook_bodies(receiver, "chat_started", first.chat_id)) == 1
    assert len(webhook_bodies(receiver, "chat_ended", first.chat_id)) == 1


async def test_unsubscribed_events_are_not_sent(
    chat_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    llm.script(Reply("Hi."))
    config_id = await make_config(
        chat_server, webhooks=[{"url": receiver.url("/only-ended"), "events": ["chat_ended"]}]
    )
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="hello"))
        await recv_until(socket, "assistant_end")
    await wait_webhook(receiver, "chat_ended", metadata.chat_id)
    sent = [json.loads(r.body)["event_name"] for r in receiver.received("/only-ended")]
    assert sent.count("chat_started") == 0 and sent.count("chat_ended") >= 1
