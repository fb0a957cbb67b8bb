"""`openevi keys`: made keys work against the running server; listings never show whole keys."""

from __future__ import annotations

import time

import pytest
from hume.core.api_error import ApiError

from tests.integration.support import sync_client, unique
from tests.server import ServerProcess


def test_keys_create_list_and_revoke(server: ServerProcess) -> None:
    name = unique("cli")
    created = server.cli("keys", "create", "--name", name)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("oevi_") and " " not in key and len(key) >= 32
    secret = next(line for line in created.stdout.splitlines() if line.startswith("secret key:")).split(":", 1)[1]

    ev = sync_client(server, key).empathic_voice
    made = ev.prompts.create_prompt(name=name, text="Made with a CLI key.")
    assert made is not None
    assert [p.id for p in ev.prompts.list_prompts() if p] == [made.id]  # a brand-new, empty account

    listed = server.cli("keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout and secret.strip() not in listed.stdout
    assert server.api_key not in listed.stdout and server.secret_key not in listed.stdout
    ours = [line for line in listed.stdout.splitlines() if name[:20] in line]
    assert len(ours) == 1 and key[:12] in ours[0]
    prefix_column = ours[0].split()[1]
    assert prefix_column == key[:12] and len(prefix_column) < len(key)

    key_id = ours[0].split()[0]
    assert server.cli("keys", "revoke", key_id).returncode == 0  # by id as well as by prefix
    with pytest.raises(ApiError) as revoked:
        for _ in range(100):  # revocation reaches the server's auth cache within seconds
            ev.prompts.list_prompts()
            time.sleep(0.1)
    assert revoked.value.status_code == 401


def test_revoking_an_unknown_key_fails(server: ServerProcess) -> None:
    result = server.cli("keys", "revoke", "oevi_nothing")
    assert result.returncode == 1
    assert "no live key" in result.stderr
    # The session key still works.
    with pytest.raises(ApiError) as missing:
        sync_client(server).empathic_voice.prompts.get_prompt_version(
            id="9f4c8f1e-0000-4000-8000-000000000000", version=0
        )
    assert missing.value.status_code == 404
