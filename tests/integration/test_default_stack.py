"""The embedded defaults end to end: the offline local model answers and the shipped voice speaks."""

from __future__ import annotations

from hume import AsyncHumeClient
from hume.empathic_voice import UserInput

from tests.integration.chat_support import of_type, recv_until, wav_info
from tests.server import ServerProcess


async def test_offline_default_model_answers_in_speech(server: ServerProcess) -> None:
    client = AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)
    async with client.empathic_voice.chat.connect() as socket:
        assert (await socket.recv()).type == "chat_metadata"
        await socket.send_publish(UserInput(text="What is the capital of France? Answer in one short sentence."))
        messages = await recv_until(socket, "assistant_end", limit_s=180)
    assert not of_type(messages, "error"), of_type(messages, "error")
    said = " ".join(m.message.content for m in of_type(messages, "assistant_message"))
    assert said.strip(), "the local model produced words"
    audio = of_type(messages, "audio_output")
    assert audio and all(wav_info(a.data)[0] == 24000 for a in audio)
