"""Pause/resume and the control plane: `POST /chat/{id}/send` and control sockets joining a live chat."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hume import AsyncHumeClient
from hume.core.api_error import ApiError
from hume.empathic_voice import (
    AssistantInput,
    PauseAssistantMessage,
    ResumeAssistantMessage,
    SessionSettings,
    UserInput,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.chat_support import client_for, of_type, recv_until
from tests.integration.live_support import WAIT_S, history, join, recv_raw_until, rest, send_raw, types_of
from tests.integration.support import new_account_key
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM


async def barrier(socket: object) -> list[object]:
    """Everything the chat sent before it handled one more (invalid) message: inbound messages are
    handled in order, so the `error` it answers comes after anything the earlier ones emitted at once."""
    await send_raw(socket, '{"type": "barrier_probe"}')
    return await recv_until(socket, "error")


async def test_pause_records_user_input_without_answering(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Yes, I am here.", when="are you there"), Reply("Hello."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(PauseAssistantMessage())
        asked_before = len(llm.requests)
        await socket.send_publish(UserInput(text="hello while paused"))
        await socket.send_publish(UserInput(text="are you there?"))
        paused = await barrier(socket)
        assert [m.message.content for m in of_type(paused, "user_message")] == ["hello while paused", "are you there?"]
        await asyncio.sleep(0.5)  # a turn, if one had started, would have asked the model by now
        paused += await barrier(socket)
        assert of_type(paused, "assistant_message") == [] and of_type(paused, "assistant_end") == []
        assert len(llm.requests) == asked_before

        await socket.send_publish(ResumeAssistantMessage())
        resumed = await recv_until(socket, "assistant_end")
    assert [m.message.content for m in of_type(resumed, "assistant_message")] == ["Yes, I am here."]
    assert llm.requests[-1].last_user_message == "are you there?"
    users = [m["content"] for m in llm.requests[-1].messages if m["role"] == "user"]
    assert users == ["hello while paused", "are you there?"]

    _, events = await history(client, metadata.chat_id)
    types = types_of(events)
    assert types.count("USER_MESSAGE") == 2
    assert types.index("PAUSE_ONSET") < types.index("USER_MESSAGE") < types.index("RESUME_ONSET")
    assert types.index("RESUME_ONSET") < types.index("AGENT_MESSAGE")


async def test_control_plane_send_drives_the_live_chat(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Backend said hi.", when="from the backend"), Reply("Paused no more."))
    client = client_for(chat_server)
    control = client.empathic_voice.control_plane
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        chat_id = metadata.chat_id

        await control.send(chat_id=chat_id, request=UserInput(text="hello from the backend"))
        seen = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(seen, "user_message")] == ["hello from the backend"]
        assert [m.message.content for m in of_type(seen, "assistant_message")] == ["Backend said hi."]

        await control.send(chat_id=chat_id, request=AssistantInput(text="Spoken for the backend."))
        seen = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(seen, "assistant_message")] == ["Spoken for the backend."]
        assert of_type(seen, "audio_output")

        await control.send(
            chat_id=chat_id, request=SessionSettings(system_prompt="Backend prompt.", custom_session_id="ctl-1")
        )
        echo = (await recv_until(socket, "session_settings"))[-1]
        assert echo.system_prompt == "Backend prompt." and echo.custom_session_id == "ctl-1"

        await control.send(chat_id=chat_id, request=PauseAssistantMessage())
        asked_before = len(llm.requests)
        await socket.send_publish(UserInput(text="anyone?"))
        paused = await recv_until(socket, "user_message")
        assert paused[-1].custom_session_id == "ctl-1"
        paused += await barrier(socket)
        assert of_type(paused, "assistant_message") == [] and len(llm.requests) == asked_before
        await control.send(chat_id=chat_id, request=ResumeAssistantMessage())
        seen = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(seen, "assistant_message")] == ["Paused no more."]
        assert llm.requests[-1].messages[0] == {"role": "system", "content": "Backend prompt."}

    await history(client, chat_id)
    with pytest.raises(ApiError) as ended:
        await control.send(chat_id=chat_id, request=UserInput(text="too late"))
    assert ended.value.status_code == 404
    with pytest.raises(ApiError) as unknown:
        await control.send(chat_id="00000000-0000-4000-8000-000000000000", request=UserInput(text="nobody"))
    assert unknown.value.status_code == 404


async def test_control_socket_joins_a_chat_that_allows_it(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Observer heard.", when="observer"), Reply("Owner heard."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(allow_connection=True) as socket:
        metadata = await socket.recv()
        async with join(chat_server, metadata.chat_id) as observer:
            # the owner's turn is seen by the observer too
            await socket.send_publish(UserInput(text="owner speaking"))
            owner_view = await recv_until(socket, "assistant_end")
            observer_view = await recv_raw_until(observer, "assistant_end")
            assert [m["message"]["content"] for m in observer_view if m["type"] == "assistant_message"] == [
                "Owner heard."
            ]
            assert [m.message.content for m in of_type(owner_view, "assistant_message")] == ["Owner heard."]

            # the observer can talk for the user
            await observer.send(json.dumps({"type": "user_input", "text": "observer speaking"}))
            owner_view = await recv_until(socket, "assistant_end")
            observer_view = await recv_raw_until(observer, "assistant_end")
            assert [m.message.content for m in of_type(owner_view, "user_message")] == ["observer speaking"]
            assert [m.message.content for m in of_type(owner_view, "assistant_message")] == ["Observer heard."]
            assert [m["message"]["content"] for m in observer_view if m["type"] == "user_message"] == [
                "observer speaking"
            ]

            # but not send audio
            audio = base64.b64encode(b"\x00\x00" * 160).decode()
            await observer.send(json.dumps({"type": "audio_input", "data": audio}))
            error = (await recv_raw_until(observer, "error"))[-1]
            assert error["code"] and error["slug"] and "audio" in error["message"]
            owner_errors = of_type(await barrier(socket), "error")  # the owner is not told
            assert [e.slug for e in owner_errors] == ["invalid_message"]

    _, events = await history(client, metadata.chat_id)
    users = [e.message_text for e in events if e.type == "USER_MESSAGE"]
    assert users == ["owner speaking", "observer speaking"]


async def test_control_socket_is_refused_without_allow_connection(chat_server: ServerProcess) -> None:
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        with pytest.raises(InvalidStatus) as refused:
            async with join(chat_server, metadata.chat_id):
                pass
        assert refused.value.response.status_code in (403, 404)
    with pytest.raises(InvalidStatus) as gone:
        async with join(chat_server, "00000000-0000-4000-8000-000000000000"):
            pass
    assert gone.value.response.status_code == 404


async def test_user_input_interrupts_the_assistant(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(
        Reply("One. Two. Three. Four. Five. Six. Seven. Eight.", when="count", delay=0.3),
        Reply("Stopped.", when="stop"),
    )
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(UserInput(text="count to eight"))
        await recv_until(socket, "assistant_message")
        await socket.send_publish(UserInput(text="stop please"))
        messages = await recv_until(socket, "user_message")
        messages += await recv_until(socket, "assistant_end")
    interruptions = of_type(messages, "user_interruption")
    assert len(interruptions) == 1
    assert messages.index(interruptions[0]) < messages.index(of_type(messages, "user_message")[0])
    said = [m.message.content for m in of_type(messages, "assistant_message")]
    assert said[-1] == "Stopped." and "Eight." not in said
    request = llm.requests[-1]
    assert request.last_user_message == "stop please"
    counted = [m["content"] for m in request.messages if m["role"] == "assistant"]
    assert len(counted) == 1 and counted[0].startswith("One.") and "Eight." not in counted[0]

    _, events = await history(client, metadata.chat_id)
    types = types_of(events)
    assert "USER_INTERRUPTION" in types
    assert types.index("USER_INTERRUPTION") < [i for i, t in enumerate(types) if t == "USER_MESSAGE"][1]


async def test_other_accounts_cannot_reach_the_chat(chat_server: ServerProcess) -> None:
    other_key = await asyncio.to_thread(new_account_key, chat_server, "chat-outsider")
    client = client_for(chat_server)
    outsider = AsyncHumeClient(api_key=other_key, base_url=chat_server.base_url)
    async with client.empathic_voice.chat.connect(allow_connection=True) as socket:
        metadata = await socket.recv()
        with pytest.raises(ApiError) as send:
            await outsider.empathic_voice.control_plane.send(
                chat_id=metadata.chat_id, request=UserInput(text="let me in")
            )
        assert send.value.status_code == 404
        with pytest.raises(InvalidStatus) as joined:
            async with join(chat_server, metadata.chat_id, api_key=other_key):
                pass
        assert joined.value.response.status_code == 404
        with pytest.raises(ApiError) as resumed:
            async with outsider.empathic_voice.chat.connect(resumed_chat_group_id=metadata.chat_group_id):
                pass
        assert resumed.value.status_code == 404
        # audio cannot be sent through the control plane either
        async with rest(chat_server) as http:
            response = await http.post(
                f"/v0/evi/chat/{metadata.chat_id}/send", json={"type": "audio_input", "data": "AAAA"}
            )
        assert response.status_code == 422
        await socket.send_publish(UserInput(text="still mine"))
        seen = await recv_until(socket, "assistant_end")
        assert [m.message.content for m in of_type(seen, "user_message")] == ["still mine"]


async def test_control_sockets_close_when_the_chat_ends(chat_server: ServerProcess) -> None:
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect(allow_connection=True) as socket:
        metadata = await socket.recv()
        observer_cm = join(chat_server, metadata.chat_id)
        observer = await observer_cm.__aenter__()
    try:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT_S):
                while True:
                    await observer.recv()
    finally:
        await observer_cm.__aexit__(None, None, None)
    chat, _ = await history(client, metadata.chat_id)
    assert chat.status == "USER_ENDED"
