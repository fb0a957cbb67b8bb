"""Revoking a key with the CLI (another process, straight in the database) ends the chats already
open with it — by the key itself or by an access token it minted — within a few seconds: an `error`,
then a close frame with code 1008. Chats of other keys carry on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hume import AsyncHumeClient
from hume.empathic_voice import UserInput
from sqlalchemy import select

from openevi.store.models import Chat
from tests.integration.chat_support import recv_until, scripted_server
from tests.integration.support import store
from tests.server import ServerProcess
from tests.support.scripted_llm import ScriptedLLM


@pytest.fixture(scope="module")
def revoking(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("revoke")),
        llm,
        OPENEVI_ASR_PROVIDER="none",
        OPENEVI_VAD_PROVIDER="none",
        OPENEVI_PROSODY_PROVIDER="none",
    )
    proc.start()
    yield proc
    proc.stop()


def create_key(server: ServerProcess) -> tuple[str, str]:
    """(api key, secret key) of a new account, made by the CLI."""
    result = server.cli("keys", "create", "--name", "revocable")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    secret = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("secret key:"))
    return lines[-1], secret


def access_token(server: ServerProcess, api_key: str, secret_key: str) -> str:
    basic = base64.b64encode(f"{api_key}:{secret_key}".encode()).decode()
    response = httpx.post(
        f"{server.base_url}/oauth2-cc/token",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def ended_by_revocation(socket: Any) -> tuple[list[Any], websockets.exceptions.ConnectionClosed]:
    """Read until the server closes the socket; the messages before, and the close."""
    seen: list[Any] = []
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        async with asyncio.timeout(20):  # the check runs every 2 s; this only bounds a hang
            while True:
                seen.append(await socket.recv())
    return seen, closed.value


async def test_cli_revocation_closes_open_key_and_token_chats(revoking: ServerProcess) -> None:
    api_key, secret_key = create_key(revoking)
    token = access_token(revoking, api_key, secret_key)
    with_key = AsyncHumeClient(api_key=api_key, base_url=revoking.base_url)
    with_token = AsyncHumeClient(base_url=revoking.base_url)
    bystander = AsyncHumeClient(api_key=revoking.api_key, base_url=revoking.base_url)
    async with (
        with_key.empathic_voice.chat.connect() as by_key,
        with_token.empathic_voice.chat.connect(access_token=token) as by_token,
        bystander.empathic_voice.chat.connect() as other,
    ):
        key_chat = (await by_key.recv()).chat_id
        token_chat = (await by_token.recv()).chat_id
        assert (await other.recv()).type == "chat_metadata"
        for socket in (by_key, by_token):  # both chats answer before the revocation
            await socket.send_publish(UserInput(text="before"))
            await recv_until(socket, "assistant_end")

        revoked = revoking.cli("keys", "revoke", api_key[:12])
        assert revoked.returncode == 0, revoked.stderr

        for socket in (by_key, by_token):
            seen, closed = await ended_by_revocation(socket)
            errors = [m for m in seen if m.type == "error"]
            assert [(e.code, e.slug) for e in errors] == [("E0106", "api_key_revoked")], seen
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "API key revoked")

        # The other account's chat is untouched.
        await other.send_publish(UserInput(text="still here?"))
        answer = await recv_until(other, "assistant_end")
        assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]

    # The revoked account's chats are stored as ended with ERROR (read from the store: its key is gone).
    async with store(revoking) as s:
        for chat_id in (key_chat, token_chat):
            chat = await s.get(Chat, chat_id)
            assert chat is not None and chat.status == "ERROR", chat and chat.status


def observer_url(server: ServerProcess, chat_id: str, api_key: str) -> str:
    return server.base_url.replace("http", "ws", 1) + f"/v0/evi/chat/{chat_id}/connect?api_key={api_key}"


async def second_key(server: ServerProcess, api_key: str) -> str:
    """Another key of the account behind `api_key` (a key rotation)."""
    from openevi.store import accounts
    from openevi.store.models import ApiKey

    async with store(server) as s:
        keys = (await s.execute(select(ApiKey))).scalars().all()
        account_id = next(k.account_id for k in keys if api_key.startswith(k.prefix))
        issued = await accounts.add_key(s, account_id=account_id, name="rotated")
    return issued.api_key


async def test_revoking_another_key_of_the_account_closes_the_observer_it_opened(revoking: ServerProcess) -> None:
    """An observer opened with key B of the chat's account used to stay, and be answered, after B was
    revoked (only the chat's own key was watched). It is told and closed; the chat goes on."""
    api_key, _ = create_key(revoking)
    rotated = await second_key(revoking, api_key)
    client = AsyncHumeClient(api_key=api_key, base_url=revoking.base_url)
    async with client.empathic_voice.chat.connect(allow_connection=True) as chat:
        chat_id = (await chat.recv()).chat_id
        async with websockets.connect(observer_url(revoking, chat_id, rotated)) as observer:
            await observer.send(json.dumps({"type": "user_input", "text": "from the observer"}))
            await recv_until(chat, "assistant_end")
            revoked = revoking.cli("keys", "revoke", rotated[:12])
            assert revoked.returncode == 0, revoked.stderr
            seen, closed = await ended_by_revocation(observer)
            errors = [json.loads(m) for m in seen if json.loads(m)["type"] == "error"]
            assert [(e["code"], e["slug"]) for e in errors] == [("E0106", "api_key_revoked")], seen
            assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (1008, "API key revoked")
        await chat.send_publish(UserInput(text="still here?"))  # the chat's own key is live
        answer = await recv_until(chat, "assistant_end")
        assert [m.message.content for m in answer if m.type == "assistant_message"] == ["OK."]


async def test_observer_sockets_are_limited_per_chat_and_per_account(revoking: ServerProcess) -> None:
    """One account used to open 989 observers on 5 chats and starve everyone else."""
    api_key, _ = create_key(revoking)
    client = AsyncHumeClient(api_key=api_key, base_url=revoking.base_url)
    async with contextlib.AsyncExitStack() as stack:
        chats = [
            await stack.enter_async_context(client.empathic_voice.chat.connect(allow_connection=True)) for _ in range(5)
        ]
        chat_ids = [(await c.recv()).chat_id for c in chats]
        for _ in range(8):  # OPENEVI_CHAT_MAX_OBSERVERS
            await stack.enter_async_context(websockets.connect(observer_url(revoking, chat_ids[0], api_key)))
        with pytest.raises(websockets.exceptions.InvalidStatus) as per_chat:
            await stack.enter_async_context(websockets.connect(observer_url(revoking, chat_ids[0], api_key)))
        assert per_chat.value.response.status_code == 429
        assert json.loads(per_chat.value.response.body)["code"] == "too_many_observers"
        for chat_id in chat_ids[1:4]:
            for _ in range(8):
                await stack.enter_async_context(websockets.connect(observer_url(revoking, chat_id, api_key)))
        with pytest.raises(websockets.exceptions.InvalidStatus) as per_account:  # 32: OPENEVI_ACCOUNT_MAX_OBSERVERS
            await stack.enter_async_context(websockets.connect(observer_url(revoking, chat_ids[4], api_key)))
        assert per_account.value.response.status_code == 429
        assert "account" in json.loads(per_account.value.response.body)["message"]
        # Another account still observes its own chat.
        other = AsyncHumeClient(api_key=revoking.api_key, base_url=revoking.base_url)
        async with other.empathic_voice.chat.connect(allow_connection=True) as theirs:
            their_id = (await theirs.recv()).chat_id
            async with websockets.connect(observer_url(revoking, their_id, revoking.api_key)):
                pass
