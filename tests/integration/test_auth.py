"""Authentication: API keys (header and query), OAuth2 client-credentials tokens, revocation."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from hume.core.api_error import ApiError

from tests.integration.support import assert_error_body, async_client, sync_client
from tests.server import ServerProcess

PROTECTED = [
    ("GET", "/v0/evi/prompts"),
    ("POST", "/v0/evi/prompts"),
    ("GET", "/v0/evi/tools"),
    ("GET", "/v0/evi/configs"),
    ("DELETE", "/v0/evi/configs/9f4c8f1e-0000-4000-8000-000000000000"),
    ("GET", "/v0/evi/chats"),
    ("GET", "/v0/evi/chat_groups"),
    ("GET", "/v0/evi/chat_groups/9f4c8f1e-0000-4000-8000-000000000000/events"),
    ("POST", "/v0/evi/chat/9f4c8f1e-0000-4000-8000-000000000000/send"),
]


def basic(api_key: str, secret_key: str) -> dict[str, str]:
    raw = base64.b64encode(f"{api_key}:{secret_key}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def fetch_token(server: ServerProcess, api_key: str, secret_key: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/oauth2-cc/token",
        headers=basic(api_key, secret_key),
        data={"grant_type": "client_credentials"},
        timeout=30.0,
    )


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_and_invalid_keys_are_401(server: ServerProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        assert_error_body(client.request(method, path, json={"name": "x", "text": "y"}), 401)
        bad = client.request(method, path, headers={"X-Hume-Api-Key": "oevi_not-a-real-key"}, json={})
        assert_error_body(bad, 401)
        assert_error_body(client.request(method, path, params={"api_key": "nope"}), 401)
        assert_error_body(client.request(method, path, headers={"Authorization": "Bearer nope"}), 401)


def test_api_key_in_query_works(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/v0/evi/prompts", params={"api_key": server.api_key}, timeout=30.0)
    assert response.status_code == 200, response.text
    assert "prompts_page" in response.json()


def test_sdk_with_a_wrong_key_gets_401(server: ServerProcess) -> None:
    with pytest.raises(ApiError) as failure:
        sync_client(server, "oevi_wrong").empathic_voice.prompts.list_prompts()
    assert failure.value.status_code == 401
    body = failure.value.body
    assert isinstance(body, dict) and {"error", "message", "code"} <= set(body)


async def test_async_sdk_with_a_wrong_key_gets_401(server: ServerProcess) -> None:
    with pytest.raises(ApiError) as failure:
        await async_client(server, "oevi_wrong").empathic_voice.configs.list_configs()
    assert failure.value.status_code == 401


def test_client_credentials_token(server: ServerProcess) -> None:
    before = int(time.time())
    response = fetch_token(server, server.api_key, server.secret_key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"access_token", "token_type", "expires_in", "issued_at"}
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert isinstance(body["issued_at"], int) and before - 5 <= body["issued_at"] <= int(time.time()) + 5
    token = body["access_token"]
    assert isinstance(token, str) and token and server.api_key not in token

    as_header = httpx.get(
        f"{server.base_url}/v0/evi/configs", headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )
    assert as_header.status_code == 200, as_header.text
    as_query = httpx.get(f"{server.base_url}/v0/evi/prompts", params={"access_token": token}, timeout=30.0)
    assert as_query.status_code == 200, as_query.text

    # The token acts for the key's account: it sees what the key made.
    made = httpx.post(
        f"{server.base_url}/v0/evi/prompts",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": f"via-token-{body['issued_at']}-{token[-6:]}", "text": "t"},
        timeout=30.0,
    )
    assert made.status_code == 201, made.text
    seen = sync_client(server).empathic_voice.prompts.get_prompt_version(id=made.json()["id"], version=0)
    assert seen is not None


def test_bad_client_credentials_are_401(server: ServerProcess) -> None:
    assert_error_body(fetch_token(server, server.api_key, "wrong-secret"), 401)
    assert_error_body(fetch_token(server, "oevi_unknown", server.secret_key), 401)
    assert_error_body(fetch_token(server, server.secret_key, server.api_key), 401)
    url = f"{server.base_url}/oauth2-cc/token"
    form = {"grant_type": "client_credentials"}
    assert_error_body(httpx.post(url, data=form, timeout=30.0), 401)
    assert_error_body(httpx.post(url, data=form, headers={"Authorization": "Basic !!!not-base64"}, timeout=30.0), 401)
    no_colon = base64.b64encode(server.api_key.encode()).decode()
    assert_error_body(httpx.post(url, data=form, headers={"Authorization": f"Basic {no_colon}"}, timeout=30.0), 401)
    wrong_grant = httpx.post(
        url, data={"grant_type": "password"}, headers=basic(server.api_key, server.secret_key), timeout=30.0
    )
    assert wrong_grant.status_code == 400, wrong_grant.text


def test_tampered_tokens_are_401(server: ServerProcess) -> None:
    token = fetch_token(server, server.api_key, server.secret_key).json()["access_token"]
    body, _, sig = token.rpartition(".")
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    for bad in (
        f"{flipped}.{sig}",
        f"{body}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
        f"{body}.",
        token + "x",
        token.replace(".", ""),
        "",
    ):
        if bad:
            response = httpx.get(
                f"{server.base_url}/v0/evi/prompts", headers={"Authorization": f"Bearer {bad}"}, timeout=30.0
            )
            assert_error_body(response, 401)
        as_query = httpx.get(f"{server.base_url}/v0/evi/prompts", params={"access_token": bad}, timeout=30.0)
        assert_error_body(as_query, 401)
    basic_scheme = httpx.get(
        f"{server.base_url}/v0/evi/prompts", headers={"Authorization": f"Basic {token}"}, timeout=30.0
    )
    assert_error_body(basic_scheme, 401)


def _status_with(server: ServerProcess, **kwargs: object) -> int:
    return httpx.get(f"{server.base_url}/v0/evi/prompts", timeout=30.0, **kwargs).status_code  # type: ignore[arg-type]


def test_revoked_key_stops_working(server: ServerProcess) -> None:
    result = server.cli("keys", "create", "--name", "to-revoke")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    key = lines[-1]
    secret = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("secret key:"))
    assert _status_with(server, headers={"X-Hume-Api-Key": key}) == 200
    token = fetch_token(server, key, secret).json()["access_token"]
    assert _status_with(server, params={"access_token": token}) == 200

    revoked = server.cli("keys", "revoke", key[:12])
    assert revoked.returncode == 0, revoked.stderr

    # The auth cache holds a key's answer, and whether a token's key is live, for 2 s each.
    deadline = time.monotonic() + 10.0
    statuses = [200, 200]
    while time.monotonic() < deadline:
        statuses = [
            _status_with(server, headers={"X-Hume-Api-Key": key}),
            _status_with(server, headers={"Authorization": f"Bearer {token}"}),
        ]
        if statuses == [401, 401]:
            break
        time.sleep(0.2)
    assert statuses == [401, 401]
    assert _status_with(server, params={"api_key": key}) == 401
    assert_error_body(fetch_token(server, key, secret), 401)
    # Other keys are untouched.
    assert _status_with(server, headers={"X-Hume-Api-Key": server.api_key}) == 200
