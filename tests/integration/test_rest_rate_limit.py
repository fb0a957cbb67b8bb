"""Per-account REST request rates over 127.0.0.1: past its writes, its write bytes or its reads an
account gets 429 with Retry-After and the JSON error body; the other budgets and accounts go on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import ServerProcess, database_url_for_tests

# Rates so low that nothing refills during a test: only the bursts count.
RATES = {
    "OPENEVI_REST_READS_PER_S": "0.001",
    "OPENEVI_REST_READ_BURST": "4",
    "OPENEVI_REST_WRITES_PER_S": "0.001",
    "OPENEVI_REST_WRITE_BURST": "3",
    "OPENEVI_REST_WRITE_BYTES_PER_S": "1",
    "OPENEVI_REST_WRITE_BYTES_BURST": "3000",
    "OPENEVI_ASR_PROVIDER": "none",
    "OPENEVI_VAD_PROVIDER": "none",
    "OPENEVI_PROSODY_PROVIDER": "none",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        data_dir=Path(tmp_path_factory.mktemp("rates")), database_url=database_url_for_tests(), extra_env=RATES
    )
    proc.start()
    yield proc
    proc.stop()


def client(server: ServerProcess) -> httpx.Client:
    """A client of a brand-new account: its budgets are untouched."""
    key = server.new_account_key("rates")
    return httpx.Client(base_url=server.base_url, headers={"X-Hume-Api-Key": key}, timeout=30)


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {
        "error": "Too Many Requests",
        "code": "rate_limited",
        "message": response.json()["message"],
    }


def test_writes_past_the_burst_get_429_while_reads_and_other_accounts_go_on(limited: ServerProcess) -> None:
    with client(limited) as c, client(limited) as other:
        statuses = [c.post("/v0/evi/prompts", json={"name": f"p{i}", "text": "t"}).status_code for i in range(3)]
        assert statuses == [201, 201, 201]
        refused = c.post("/v0/evi/prompts", json={"name": "p3", "text": "t"})
        assert_rate_limited(refused)
        # One write at 0.001 a second: 1000 s, less what refilled while the three writes ran.
        assert 900 <= int(refused.headers["retry-after"]) <= 1000
        assert c.get("/v0/evi/prompts").status_code == 200  # reads have their own budget
        names = [p["name"] for p in c.get("/v0/evi/prompts").json()["prompts_page"]]
        assert "p3" not in names  # the refused write did nothing
        assert other.post("/v0/evi/prompts", json={"name": "p", "text": "t"}).status_code == 201


def test_write_bytes_past_the_burst_get_429(limited: ServerProcess) -> None:
    with client(limited) as c:
        # A body larger than the byte burst passes once (the budget goes into debt)...
        assert c.post("/v0/evi/prompts", json={"name": "big", "text": "x" * 5000}).status_code == 201
        # ...then even a small write waits for the refill (about 2 KB at 1 byte a second).
        refused = c.post("/v0/evi/prompts", json={"name": "small", "text": "t"})
        assert_rate_limited(refused)
        assert int(refused.headers["retry-after"]) > 1000


def test_chunked_write_bodies_are_counted_too(limited: ServerProcess) -> None:
    with client(limited) as c:
        body = b'{"name": "chunked", "text": "' + b"x" * 5000 + b'"}'
        sent = c.post("/v0/evi/prompts", content=iter([body]), headers={"content-type": "application/json"})
        assert sent.status_code == 201, sent.text
        assert "content-length" not in sent.request.headers
        assert_rate_limited(c.post("/v0/evi/prompts", json={"name": "small", "text": "t"}))


def test_reads_past_the_burst_get_429_while_writes_go_on(limited: ServerProcess) -> None:
    with client(limited) as c:
        assert [c.get("/v0/evi/configs").status_code for _ in range(4)] == [200] * 4
        assert_rate_limited(c.get("/v0/evi/configs"))
        assert c.post("/v0/evi/prompts", json={"name": "p", "text": "t"}).status_code == 201


def test_requests_without_credentials_are_not_charged_and_still_get_401(limited: ServerProcess) -> None:
    with httpx.Client(base_url=limited.base_url, timeout=30) as anonymous:
        assert {anonymous.get("/v0/evi/configs").status_code for _ in range(6)} == {401}
