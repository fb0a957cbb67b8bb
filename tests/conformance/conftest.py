"""Fixtures for spec-driven tests: the REST contract, and real objects on the running server.

The spec is the repository's copy, `docs/spec/evi-rest-openapi.json` (tests/support/spec.py).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from openevi.settings import Settings
from openevi.store import accounts, chats
from openevi.store.db import create_engine, session_factory, transaction
from tests.server import ServerProcess
from tests.support.spec import load_spec

SPEC_URI = "urn:openevi:evi-rest-openapi"


def component_validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for `#/components/schemas/<name>`, resolving `$ref`s into the spec."""
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    return load_spec()


@dataclass(frozen=True)
class StoredChat:
    chat_id: str
    chat_group_id: str


def write_chat(server: ServerProcess, *, config_id: str | None, config_version: int | None) -> StoredChat:
    """Write a finished chat with a few events straight into the server's database (as the chat engine
    would), in the account of the server's default key."""
    url = server.database_url or Settings(data_dir=server.data_dir).resolved_database_url

    async def write() -> StoredChat:
        engine = create_engine(url)
        try:
            factory = session_factory(engine)
            async with transaction(factory) as s:
                account_id = await accounts.default_account_id(s)
                assert account_id is not None
                chat, group, _ = await chats.start_chat(
                    s,
                    account_id=account_id,
                    config_id=config_id,
                    config_version=config_version,
                    metadata=json.dumps({"source": "conformance"}),
                )
                await chats.append_event(s, chat_id=chat.id, role="SYSTEM", type="SYSTEM_PROMPT", message_text="Hi")
                user = await chats.append_event(
                    s,
                    chat_id=chat.id,
                    role="USER",
                    type="USER_MESSAGE",
                    message_text="Hello there",
                    emotion_features=json.dumps({"Joy": 0.5}),
                )
                await chats.append_event(
                    s,
                    chat_id=chat.id,
                    role="AGENT",
                    type="AGENT_MESSAGE",
                    message_text="Hello! How can I help?",
                    related_event_id=user.id,
                )
                await chats.end_chat(s, chat_id=chat.id, status="USER_ENDED")
                return StoredChat(chat_id=chat.id, chat_group_id=group.id)
        finally:
            await engine.dispose()

    return asyncio.run(write())


class Seeder:
    """Creates real prompts, tools and configs over REST, so `{id}` paths can name live objects."""

    def __init__(self, server: ServerProcess) -> None:
        self.client = httpx.Client(base_url=server.base_url, headers={"X-Hume-Api-Key": server.api_key}, timeout=30.0)

    def close(self) -> None:
        self.client.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def prompt(self) -> dict[str, Any]:
        return self._post(
            "/v0/evi/prompts",
            {"name": f"conf-prompt-{uuid.uuid4().hex[:8]}", "text": "You are terse.", "version_description": "v0"},
        )

    def tool(self) -> dict[str, Any]:
        parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        return self._post(
            "/v0/evi/tools",
            {
                "name": f"conf_tool_{uuid.uuid4().hex[:8]}",
                "parameters": json.dumps(parameters),
                "description": "Weather for a city",
                "fallback_content": "Unavailable",
            },
        )

    def config(self, prompt: dict[str, Any] | None = None, tool: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": f"conf-config-{uuid.uuid4().hex[:8]}", "evi_version": "3"}
        if prompt is not None:
            body["prompt"] = {"id": prompt["id"], "version": prompt["version"]}
        if tool is not None:
            body["tools"] = [{"id": tool["id"], "version": tool["version"]}]
        return self._post("/v0/evi/configs", body)

    def make(self, kind: str) -> dict[str, Any]:
        return {"prompt": self.prompt, "tool": self.tool, "config": self.config}[kind]()


@pytest.fixture(scope="session")
def seeder(server: ServerProcess) -> Any:
    s = Seeder(server)
    yield s
    s.close()
