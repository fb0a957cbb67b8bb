"""Objects read back over REST validate against the spec's component schemas (Draft 2020-12).

Independent of schemathesis: each GET's JSON is checked with `jsonschema` against the component the
spec names for that response, with `$ref`s resolved inside the spec.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Seeder, component_validator, write_chat
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.base_url, headers={"X-Hume-Api-Key": server.api_key}, timeout=30) as c:
        yield c


def assert_valid(spec: dict[str, Any], component: str, instance: Any) -> None:
    errors = sorted(component_validator(spec, component).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def response_component(spec: dict[str, Any], path: str, method: str = "get", status: str = "200") -> str:
    """The component a documented response refers to, e.g. `return_prompt_public`."""
    ref = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    return str(ref.rsplit("/", 1)[-1])


def get_ok(client: httpx.Client, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def test_validator_rejects_a_wrong_object(spec: dict[str, Any]) -> None:
    """The validator is not vacuous: a prompt without its required fields fails."""
    errors = list(component_validator(spec, "return_prompt_public").iter_errors({"id": 1}))
    assert errors


def test_prompt_tool_config_versions_validate(spec: dict[str, Any], client: httpx.Client, seeder: Seeder) -> None:
    prompt, tool = seeder.prompt(), seeder.tool()
    config = seeder.config(prompt, tool)
    version = client.post(f"/v0/evi/prompts/{prompt['id']}", json={"text": "Second", "version_description": "v1"})
    assert version.status_code == 201, version.text

    for plural, obj in (("prompts", prompt), ("tools", tool), ("configs", config)):
        item = f"/v0/evi/{plural}/{{id}}/version/{{version}}"
        body = get_ok(client, f"/v0/evi/{plural}/{obj['id']}/version/0")
        assert body["id"] == obj["id"] and body["version"] == 0
        assert_valid(spec, response_component(spec, item), body)

        listing = get_ok(client, f"/v0/evi/{plural}?page_size=100")
        assert_valid(spec, response_component(spec, f"/v0/evi/{plural}"), listing)
        versions = get_ok(client, f"/v0/evi/{plural}/{obj['id']}?restrict_to_most_recent=false")
        assert_valid(spec, response_component(spec, f"/v0/evi/{plural}/{{id}}"), versions)

    # The config embeds the prompt and tool it was made with; those nested objects are validated above.
    config_body = get_ok(client, f"/v0/evi/configs/{config['id']}/version/0")
    assert config_body["prompt"]["id"] == prompt["id"]
    assert [t["id"] for t in config_body["tools"]] == [tool["id"]]


def test_stored_chat_validates(
    spec: dict[str, Any], client: httpx.Client, server: ServerProcess, seeder: Seeder
) -> None:
    config = seeder.config()
    chat = write_chat(server, config_id=config["id"], config_version=config["version"])

    events = get_ok(client, f"/v0/evi/chats/{chat.chat_id}")
    assert_valid(spec, response_component(spec, "/v0/evi/chats/{id}"), events)
    assert [e["type"] for e in events["events_page"]] == ["SYSTEM_PROMPT", "USER_MESSAGE", "AGENT_MESSAGE"]
    assert events["status"] == "USER_ENDED"

    chats = get_ok(client, f"/v0/evi/chats?config_id={config['id']}")
    assert_valid(spec, response_component(spec, "/v0/evi/chats"), chats)
    assert [c["id"] for c in chats["chats_page"]] == [chat.chat_id]
    assert_valid(spec, "return_chat", chats["chats_page"][0])

    for path, url in (
        ("/v0/evi/chat_groups", f"/v0/evi/chat_groups?config_id={config['id']}"),
        ("/v0/evi/chat_groups/{id}", f"/v0/evi/chat_groups/{chat.chat_group_id}"),
        ("/v0/evi/chat_groups/{id}/events", f"/v0/evi/chat_groups/{chat.chat_group_id}/events"),
        ("/v0/evi/chat_groups/{id}/audio", f"/v0/evi/chat_groups/{chat.chat_group_id}/audio"),
        ("/v0/evi/chats/{id}/audio", f"/v0/evi/chats/{chat.chat_id}/audio"),
    ):
        assert_valid(spec, response_component(spec, path), get_ok(client, url))


@pytest.mark.parametrize(
    "headers", [{}, {"X-Hume-Api-Key": "not-a-key"}, {"Authorization": "Bearer nope"}], ids=["none", "wrong", "token"]
)
def test_credentials_are_required(server: ServerProcess, headers: dict[str, str]) -> None:
    """The credential header is not fuzzed (see test_openapi.py), so its absence is checked here."""
    response = httpx.get(f"{server.base_url}/v0/evi/prompts", headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error", "message", "code"}
