"""Values that one database accepts and another chokes on must not become 5xx.

PostgreSQL text cannot hold NUL and its integer columns are 32-bit, where SQLite takes both; these
run on whichever database the suite is pointed at (CI runs both).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server import ServerProcess


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    # A 500 makes the server drop the connection; a fresh connection per request keeps failures apart.
    headers = {"X-Hume-Api-Key": server.api_key, "Connection": "close"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as c:
        yield c


def test_nul_in_stored_strings_is_accepted(client: httpx.Client) -> None:
    created = client.post("/v0/evi/prompts", json={"name": "nul\x00name", "text": "a\x00b"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    described = client.patch(f"/v0/evi/prompts/{pid}/version/0", json={"version_description": "d\x00"})
    assert described.status_code == 200, described.text
    renamed = client.patch(f"/v0/evi/prompts/{pid}", json={"name": "renamed\x00"})
    assert renamed.status_code == 200, renamed.text
    fetched = client.get(f"/v0/evi/prompts/{pid}/version/0")
    assert fetched.status_code == 200
    # SQLite keeps the NUL, PostgreSQL stores U+FFFD in its place; either way the rest is intact.
    assert fetched.json()["text"] in ("a\x00b", "a\ufffdb")
    assert fetched.json()["name"] in ("renamed\x00", "renamed\ufffd")

    config = client.post("/v0/evi/configs", json={"name": "cfg\x00", "evi_version": "3", "prompt": {"text": "p\x00"}})
    assert config.status_code == 201, config.text


@pytest.mark.parametrize(
    "url",
    [
        "/v0/evi/prompts/abc%00",
        "/v0/evi/prompts/abc%00/version/0",
        "/v0/evi/configs/abc%00",
        "/v0/evi/tools/abc%00/version/0",
        "/v0/evi/chats/abc%00",
        "/v0/evi/chats/abc%00/audio",
        "/v0/evi/chat_groups/abc%00",
        "/v0/evi/chat_groups/abc%00/events",
    ],
)
def test_nul_in_ids_is_not_found(client: httpx.Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


def test_nul_in_filters_matches_nothing(client: httpx.Client) -> None:
    for url in ("/v0/evi/prompts?name=x%00", "/v0/evi/configs?name=x%00", "/v0/evi/tools?name=x%00"):
        response = client.get(url)
        assert response.status_code == 200, response.text
        assert response.json()["total_pages"] == 0


@pytest.mark.parametrize("version", [2**31, 2**31 - 1, 2**40, -1])
def test_versions_beyond_32_bits_are_not_found(client: httpx.Client, version: int) -> None:
    pid = client.post("/v0/evi/prompts", json={"name": f"big-version-{version}", "text": "x"}).json()["id"]
    for method, body in (("GET", None), ("PATCH", {"version_description": "d"}), ("DELETE", None)):
        response = client.request(method, f"/v0/evi/prompts/{pid}/version/{version}", json=body)
        assert response.status_code == 404, (method, response.text)
    ref = {"name": f"cfg-big-{version}", "evi_version": "3", "prompt": {"id": pid, "version": version}}
    config = client.post("/v0/evi/configs", json=ref)
    assert config.status_code in (400, 422), config.text
