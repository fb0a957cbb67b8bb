"""session_settings in a live chat: prompt and variables, context, custom_session_id, voices, and
settings passed in the connect URL — observed in what the scripted model receives and in history."""

from __future__ import annotations

import json
import uuid

import pytest
from hume.empathic_voice import Context, SessionSettings, UserInput, VoiceId, VoiceName
from hume.empathic_voice.types import ConnectSessionSettings

from tests.integration.chat_support import client_for, of_type, recv_until
from tests.integration.live_support import history, types_of
from tests.server import ServerProcess
from tests.support.scripted_llm import RecordedRequest, Reply, ScriptedLLM


def asked(llm: ScriptedLLM, text: str) -> RecordedRequest:
    """The last request whose last user message starts with `text`."""
    found = [r for r in llm.requests if (r.last_user_message or "").startswith(text)]
    assert found, f"the model was never asked {text!r}"
    return found[-1]


async def test_system_prompt_override_and_variables(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Hello Ada."))
    client = client_for(chat_server)
    prompt = "You help {{name}}, age {{age}}, vip {{vip}}, ratio {{ratio}}. Unknown: {{missing}}."
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(
            SessionSettings(system_prompt=prompt, variables={"name": "Ada", "age": 36, "vip": True, "ratio": 0.5})
        )
        echo = (await recv_until(socket, "session_settings"))[-1]
        assert echo.system_prompt == prompt
        await socket.send_publish(UserInput(text="settings-prompt hello"))
        await recv_until(socket, "assistant_end")
        # a later variables message alone re-fills the same prompt
        await socket.send_publish(SessionSettings(variables={"name": "Grace"}))
        await recv_until(socket, "session_settings")
        await socket.send_publish(UserInput(text="settings-prompt again"))
        await recv_until(socket, "assistant_end")

    filled = "You help Ada, age 36, vip true, ratio 0.5. Unknown: {{missing}}."
    first = asked(llm, "settings-prompt hello")
    assert first.messages[0] == {"role": "system", "content": filled}
    second = asked(llm, "settings-prompt again")
    assert second.messages[0]["content"] == filled.replace("Ada", "Grace")

    _, events = await history(client, metadata.chat_id)
    prompts = [e.message_text for e in events if e.type == "SYSTEM_PROMPT"]
    assert prompts[-2:] == [filled, filled.replace("Ada", "Grace")]
    settings = [json.loads(e.message_text) for e in events if e.type == "SESSION_SETTINGS"]
    assert settings[0]["system_prompt"] == prompt and settings[0]["variables"]["name"] == "Ada"
    assert settings[1]["variables"] == {"name": "Grace"}
    assert {e.role for e in events if e.type == "SESSION_SETTINGS"} == {"USER"}


async def test_persistent_and_temporary_context(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Noted."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(
            SessionSettings(context=Context(text="The user is on the Pro plan.", type="persistent"))
        )
        await socket.send_publish(UserInput(text="ctx one"))
        await recv_until(socket, "assistant_end")
        await socket.send_publish(SessionSettings(context=Context(text="Today is a holiday.", type="temporary")))
        await socket.send_publish(UserInput(text="ctx two"))
        await recv_until(socket, "assistant_end")
        await socket.send_publish(UserInput(text="ctx three"))
        await recv_until(socket, "assistant_end")

    persistent = "{Context: The user is on the Pro plan.}"
    temporary = "{Context: Today is a holiday.}"
    one = asked(llm, "ctx one").last_user_message or ""
    assert persistent in one and temporary not in one
    two = asked(llm, "ctx two").last_user_message or ""
    assert persistent in two and temporary in two
    three = asked(llm, "ctx three").last_user_message or ""
    assert persistent in three and temporary not in three  # temporary context is used once


async def test_custom_session_id_is_echoed_on_every_later_message(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("First sentence. Second sentence."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        await socket.send_publish(SessionSettings(custom_session_id="sess-42"))
        await socket.send_publish(UserInput(text="custom id please"))
        messages = await recv_until(socket, "assistant_end")
    kinds = {m.type for m in messages}
    assert {"session_settings", "user_message", "assistant_message", "audio_output", "assistant_end"} <= kinds
    assert [m.custom_session_id for m in messages] == ["sess-42"] * len(messages)


@pytest.mark.parametrize(
    "voice_id",
    ["5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c", "no-such-voice-0000", "ITO"],  # library id, unknown id, a name
)
async def test_any_voice_id_is_accepted_echoed_and_spoken(
    chat_server: ServerProcess, llm: ScriptedLLM, voice_id: str
) -> None:
    llm.script(Reply("Still here."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(voice_id=voice_id))
        echoed = await recv_until(socket, "session_settings")
        assert echoed[-1].voice_id == voice_id
        await socket.send_publish(UserInput(text="voice still works?"))
        messages = await recv_until(socket, "assistant_end")
    assert not of_type(echoed + messages, "error")
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Still here."]
    assert of_type(messages, "audio_output")


@pytest.mark.parametrize(
    "voice",
    [
        VoiceName(name="ITO", provider="HUME_AI"),
        VoiceId(id="5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c"),
        VoiceId(id="0d5f2c86-6f2e-4f1e-9c53-2a4d1c9b7e11", provider="CUSTOM_VOICE"),
    ],
    ids=["library-name", "library-id", "custom-voice"],
)
async def test_chat_on_a_config_with_a_hume_voice_speaks(
    chat_server: ServerProcess, llm: ScriptedLLM, voice: VoiceName | VoiceId
) -> None:
    llm.script(Reply("Hello in a mapped voice."))
    client = client_for(chat_server)
    config = await client.empathic_voice.configs.create_config(
        name=f"hume-voice-{uuid.uuid4().hex[:8]}", evi_version="3", voice=voice
    )
    assert config.voice is not None and config.voice.provider == (voice.provider or "HUME_AI")
    async with client.empathic_voice.chat.connect(config_id=config.id) as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        await socket.send_publish(UserInput(text="say something"))
        messages = await recv_until(socket, "assistant_end")
    assert not of_type(messages, "error")
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Hello in a mapped voice."]
    assert of_type(messages, "audio_output")


async def test_settings_in_the_connect_url_apply_from_the_start(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Arr."))
    client = client_for(chat_server)
    settings = ConnectSessionSettings(
        system_prompt="You are {{role}} talking to {{who}}.",
        variables={"role": "a pirate", "who": "Lin"},
        custom_session_id="sess-url",
    )
    async with client.empathic_voice.chat.connect(session_settings=settings) as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        await socket.send_publish(UserInput(text="url settings hello"))
        messages = await recv_until(socket, "assistant_end")
    assert all(m.custom_session_id == "sess-url" for m in messages if m.type != "session_settings")
    request = asked(llm, "url settings hello")
    assert request.messages[0] == {"role": "system", "content": "You are a pirate talking to Lin."}

    _, events = await history(client, metadata.chat_id)
    types = types_of(events)
    assert types[0] == "CHAT_START_MESSAGE"
    assert "SESSION_SETTINGS" in types
    stored = json.loads(next(e.message_text for e in events if e.type == "SESSION_SETTINGS"))
    assert stored["system_prompt"] == "You are {{role}} talking to {{who}}."
    assert stored["variables"] == {"role": "a pirate", "who": "Lin"}
    prompts = [e.message_text for e in events if e.type == "SYSTEM_PROMPT"]
    assert prompts and set(prompts) == {"You are a pirate talking to Lin."}  # never the unfilled default


async def test_language_model_api_key_is_used_but_never_shown(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Keyed."))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(language_model_api_key="sk-user-secret-123", system_prompt="Keyed."))
        echo = (await recv_until(socket, "session_settings"))[-1]
        assert echo.language_model_api_key is None and echo.system_prompt == "Keyed."
        await socket.send_publish(UserInput(text="keyed hello"))
        await recv_until(socket, "assistant_end")
    request = asked(llm, "keyed hello")
    assert request.headers.get("authorization") == "Bearer sk-user-secret-123"
    _, events = await history(client, metadata.chat_id)
    assert all("sk-user-secret-123" not in (e.message_text or "") for e in events)
