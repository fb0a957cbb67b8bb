"""Recordings of both sides and their reconstruction, served through signed URLs."""

from __future__ import annotations

import asyncio
import io
import wave

import httpx
import numpy as np
from hume.empathic_voice import AssistantInput

from openevi.audio import urls
from tests.integration.chat_support import client_for, recv_until, wait_chat_ended
from tests.server import ServerProcess


async def _spoken_chat(server: ServerProcess) -> str:
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        await socket.send_publish(AssistantInput(text="This sentence is recorded."))
        await recv_until(socket, "assistant_end")
    await wait_chat_ended(client, metadata.chat_id)
    return str(metadata.chat_id)


async def test_reconstruction_completes_and_downloads(chat_server: ServerProcess) -> None:
    chat_id = await _spoken_chat(chat_server)
    client = client_for(chat_server)
    async with asyncio.timeout(30):
        while True:
            rec = await client.empathic_voice.chats.get_audio(id=chat_id)
            assert rec.status in ("QUEUED", "IN_PROGRESS", "COMPLETE"), rec.status
            if rec.status == "COMPLETE":
                break
            await asyncio.sleep(0.1)
    assert rec.id == chat_id and rec.filename == f"{chat_id}.wav"
    assert rec.signed_audio_url and rec.signed_url_expiration_timestamp_millis
    async with httpx.AsyncClient() as http:
        response = await http.get(rec.signed_audio_url)
        tampered = rec.signed_audio_url.replace("signature=", "signature=0")
        assert (await http.get(tampered)).status_code == 403
        other_chat = rec.signed_audio_url.replace(chat_id, "00000000-0000-0000-0000-000000000000")
        assert (await http.get(other_chat)).status_code == 403
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert wav.getframerate() == 24000
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert samples.size > 24000 * 0.5, "the spoken sentence lasts more than half a second"
    assert np.abs(samples).max() > 1000, "the assistant's speech is audible in the mix"


async def test_group_audio_lists_each_chat(chat_server: ServerProcess) -> None:
    chat_id = await _spoken_chat(chat_server)
    client = client_for(chat_server)
    page = await client.empathic_voice.chats.list_chat_events(id=chat_id)
    group = await client.empathic_voice.chat_groups.get_audio(id=page.response.chat_group_id)
    assert group.num_chats == 1
    assert [r.id for r in group.audio_reconstructions_page] == [chat_id]
    assert group.audio_reconstructions_page[0].status in ("QUEUED", "IN_PROGRESS", "COMPLETE")


def test_expired_url_is_refused() -> None:
    path, expires = urls.sign("secret", "chat", ttl_s=-1)
    signature = path.split("signature=")[1]
    assert not urls.verify("secret", "chat", expires, signature)
    path, expires = urls.sign("secret", "chat", ttl_s=60)
    assert urls.verify("secret", "chat", expires, path.split("signature=")[1])
    assert not urls.verify("other", "chat", expires, path.split("signature=")[1])
