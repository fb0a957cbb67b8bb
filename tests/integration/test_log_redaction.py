"""Credentials passed in query strings never reach the server's log, in access lines or elsewhere."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # info level: uvicorn writes the access log and WebSocket lines only at info.
    proc = ServerProcess(data_dir=Path(tmp_path_factory.mktemp("logs")), extra_env={"OPENEVI_LOG_LEVEL": "info"})
    proc.start()
    yield proc
    proc.stop()


async def test_query_credentials_are_redacted_in_the_log(server: ServerProcess) -> None:
    bogus_token = "tok_" + secrets.token_urlsafe(24)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        ok = await http.get("/v0/evi/configs", params={"api_key": server.api_key, "page_size": 1})
        assert ok.status_code == 200, ok.text
        denied = await http.get("/v0/evi/prompts", params={"access_token": bogus_token})
        assert denied.status_code == 401
    ws_url = server.base_url.replace("http://", "ws://") + f"/v0/evi/chat?api_key={server.api_key}"
    async with connect(ws_url) as ws:
        assert '"chat_metadata"' in str(await ws.recv())
    server.stop()  # flush and close the log
    server.start()
    log = server.log_path.read_text()
    assert "/v0/evi/configs?api_key=***" in log  # the access line is there, redacted
    assert "/v0/evi/chat?api_key=***" in log  # and the WebSocket line
    assert "access_token=***" in log
    assert server.api_key not in log
    assert bogus_token not in log
