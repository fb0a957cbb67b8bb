"""Helpers for chat tests: a server wired to the scripted model, and a reader of SDK sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from hume import AsyncHumeClient
from hume.core.api_error import ApiError

from tests.server import ServerProcess, database_url_for_tests
from tests.support.scripted_llm import RecordedRequest, ScriptedLLM


def scripted_server(data_dir: Path, llm: ScriptedLLM, **extra_env: str) -> ServerProcess:
    """A server whose default language model is the scripted one."""
    return ServerProcess(
        data_dir=data_dir,
        database_url=database_url_for_tests(),
        extra_env={
            "OPENEVI_LLM_PROVIDER": "OPEN_AI",
            "OPENEVI_LLM_MODEL": "scripted",
            "OPENEVI_OPENAI_BASE_URL": llm.base_url,
            "OPENEVI_OPENAI_API_KEY": "scripted-key",
            "OPENEVI_ALLOW_HTTP_WEBHOOKS": "true",
            # No real-time pacing of audio_output unless a test asks for it: tests read fast.
            "OPENEVI_AUDIO_LEAD_MS": "600000",
            **extra_env,
        },
    )


def last_is(role: str) -> Any:
    """A scripted-model matcher: the newest message of the request has this role."""

    def match(request: RecordedRequest) -> bool:
        return bool(request.messages) and request.messages[-1].get("role") == role

    return match


def client_for(server: ServerProcess) -> AsyncHumeClient:
    return AsyncHumeClient(api_key=server.api_key, base_url=server.base_url)


async def connect_once_admitted(
    connect: Callable[[], AbstractAsyncContextManager[Any]], refused: int, *, poll_s: float = 0.1, limit_s: float = 30.0
) -> None:
    """Open chats until one is admitted (gets `chat_metadata`); meanwhile every refusal is HTTP `refused`."""
    async with asyncio.timeout(limit_s):  # bounds a hang only
        while True:
            try:
                async with connect() as socket:
                    assert (await socket.recv()).type == "chat_metadata"
                    return
            except ApiError as exc:
                assert exc.status_code == refused
                await asyncio.sleep(poll_s)


async def recv_until(socket: Any, kind: str, *, limit_s: float = 30.0) -> list[Any]:
    """Messages up to and including the first of type `kind`."""
    seen: list[Any] = []
    async with asyncio.timeout(limit_s):
        while True:
            message = await socket.recv()
            seen.append(message)
            if message.type == kind:
                return seen


def of_type(messages: list[Any], kind: str) -> list[Any]:
    return [m for m in messages if m.type == kind]


def wav_info(data_b64: str) -> tuple[int, int, int]:
    """(sample rate, channels, frames) of one audio_output chunk."""
    with wave.open(io.BytesIO(base64.b64decode(data_b64))) as wav:
        return wav.getframerate(), wav.getnchannels(), wav.getnframes()


async def wait_chat_ended(client: AsyncHumeClient, chat_id: str, *, limit_s: float = 30.0) -> Any:
    """The chat's stored record once it is no longer ACTIVE (the end is written just after close)."""
    async with asyncio.timeout(limit_s):
        while True:
            page = await client.empathic_voice.chats.list_chat_events(id=chat_id)
            if page.response.status != "ACTIVE":
                return page.response
            await asyncio.sleep(0.05)
