"""The chat WebSocket through the official SDK: metadata, text in, words and speech out, history."""

from __future__ import annotations

from hume.empathic_voice import AssistantInput, UserInput

from tests.integration.chat_support import client_for, of_type, recv_until, wait_chat_ended, wav_info
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM


async def test_text_turn_streams_words_and_audio(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("The weather in Lyon is sunny today. Bring sunglasses!", when="weather"))
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        assert metadata.type == "chat_metadata"
        await socket.send_publish(UserInput(text="What's the weather?"))
        messages = await recv_until(socket, "assistant_end")

    user = of_type(messages, "user_message")
    assert [u.message.content for u in user] == ["What's the weather?"]
    assert user[0].from_text is True and user[0].interim is False
    said = [m.message.content for m in of_type(messages, "assistant_message")]
    assert " ".join(said) == "The weather in Lyon is sunny today. Bring sunglasses!"
    assert len(said) == 2  # one message per sentence
    audio = of_type(messages, "audio_output")
    assert audio, "every assistant message is spoken"
    ids = {m.id for m in of_type(messages, "assistant_message")}
    assert {a.id for a in audio} == ids
    for message_id in ids:
        indexes = [a.index for a in audio if a.id == message_id]
        assert indexes == list(range(len(indexes)))
    rate, channels, frames = wav_info(audio[0].data)
    assert (rate, channels) == (24000, 1) and frames > 0
    # the assistant_message of a piece comes before its audio
    first_audio = messages.index(audio[0])
    assert messages[first_audio - 1].type in ("assistant_message", "audio_output")

    request = llm.requests[-1]
    assert request.last_user_message == "What's the weather?"
    assert request.messages[0]["role"] == "system"

    await wait_chat_ended(client, metadata.chat_id)
    history = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id, page_size=100)
    types = [e.type for e in history.items or []]
    assert types[0] == "CHAT_START_MESSAGE"
    assert "SYSTEM_PROMPT" in types and "USER_MESSAGE" in types
    assert types.count("AGENT_MESSAGE") == 2
    assert types[-1] == "CHAT_END_MESSAGE"


async def test_assistant_input_is_spoken_verbatim_without_model(chat_server: ServerProcess, llm: ScriptedLLM) -> None:
    client = client_for(chat_server)
    before = len(llm.requests)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(AssistantInput(text="Hello there. I am openevi."))
        messages = await recv_until(socket, "assistant_end")
    said = [m.message.content for m in of_type(messages, "assistant_message")]
    assert said == ["Hello there.", "I am openevi."]
    assert of_type(messages, "audio_output")
    assert len(llm.requests) == before


async def test_chat_is_closed_in_history_when_client_leaves(chat_server: ServerProcess) -> None:
    client = client_for(chat_server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        chat = await client.empathic_voice.chats.list_chat_events(id=metadata.chat_id)
        assert chat.response.status == "ACTIVE"
    ended = await wait_chat_ended(client, metadata.chat_id)
    assert ended.status == "USER_ENDED"
    assert ended.end_timestamp is not None and ended.end_timestamp >= ended.start_timestamp
