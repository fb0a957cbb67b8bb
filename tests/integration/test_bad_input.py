"""Bad input: every bound the spec states, malformed bodies, unknown ids, oversize requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.support import (
    assert_error_body,
    assert_validation_error,
    http,
    new_account_key,
    unique,
)
from tests.server import ServerProcess

UNKNOWN_ID = "9f4c8f1e-0000-4000-8000-000000000000"
PARAMS = json.dumps({"type": "object", "properties": {}})


@pytest.fixture(scope="module")
def raw(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client of an account of this module's own, holding one prompt, tool and config."""
    with http(server, new_account_key(server, "bad-input")) as client:
        assert client.post("/v0/evi/prompts", json={"name": "p", "text": "t"}).status_code == 201
        assert client.post("/v0/evi/tools", json={"name": "t", "parameters": PARAMS}).status_code == 201
        assert client.post("/v0/evi/configs", json={"name": "c", "evi_version": "3"}).status_code == 201
        yield client


def snapshot(raw: httpx.Client) -> dict[str, Any]:
    """Every version of everything the account has."""
    everything = {"page_size": 100, "restrict_to_most_recent": False}
    return {
        kind: raw.get(f"/v0/evi/{kind}", params=everything).json()[f"{kind}_page"]
        for kind in ("prompts", "tools", "configs")
    }


def only_id(raw: httpx.Client, kind: str) -> str:
    page = raw.get(f"/v0/evi/{kind}").json()[f"{kind}_page"]
    return str(page[0]["id"])


# (field path, value) outside a bound the spec states; the inclusive edges are accepted.
OUT_OF_RANGE: list[tuple[dict[str, Any], str]] = [
    ({"evi_version": "2"}, "evi_version"),
    ({"evi_version": "4"}, "evi_version"),
    ({"evi_version": "1"}, "evi_version"),
    ({"turn_detection": {"end_of_turn_silence_ms": 499}}, "end_of_turn_silence_ms"),
    ({"turn_detection": {"end_of_turn_silence_ms": 3001}}, "end_of_turn_silence_ms"),
    ({"turn_detection": {"prefix_padding_ms": -1}}, "prefix_padding_ms"),
    ({"turn_detection": {"prefix_padding_ms": 1001}}, "prefix_padding_ms"),
    ({"turn_detection": {"speech_detection_threshold": -0.01}}, "speech_detection_threshold"),
    ({"turn_detection": {"speech_detection_threshold": 1.01}}, "speech_detection_threshold"),
    ({"interruption": {"min_interruption_ms": 49}}, "min_interruption_ms"),
    ({"interruption": {"min_interruption_ms": 2001}}, "min_interruption_ms"),
    ({"timeouts": {"inactivity": {"enabled": True, "duration_secs": 0}}}, "duration_secs"),
    ({"timeouts": {"inactivity": {"enabled": True, "duration_secs": 1801}}}, "duration_secs"),
    ({"timeouts": {"max_duration": {"enabled": True, "duration_secs": 0}}}, "duration_secs"),
    ({"timeouts": {"max_duration": {"enabled": True, "duration_secs": 1801}}}, "duration_secs"),
    ({"language_model": {"model_provider": "OPEN_AI", "temperature": -0.1}}, "temperature"),
    ({"language_model": {"model_provider": "OPEN_AI", "temperature": 1.5}}, "temperature"),
    ({"webhooks": [{"url": "https://example.com/h", "events": ["chat_paused"]}]}, "events"),
    ({"webhooks": [{"url": "https://example.com/h", "events": []}]}, "events"),
]

AT_THE_EDGES: list[dict[str, Any]] = [
    {"evi_version": "4-mini"},
    {"turn_detection": {"end_of_turn_silence_ms": 500, "prefix_padding_ms": 0, "speech_detection_threshold": 0}},
    {"turn_detection": {"end_of_turn_silence_ms": 3000, "prefix_padding_ms": 1000, "speech_detection_threshold": 1}},
    {"interruption": {"min_interruption_ms": 50}},
    {"interruption": {"min_interruption_ms": 2000}},
    {
        "timeouts": {
            "inactivity": {"enabled": True, "duration_secs": 30},
            "max_duration": {"enabled": True, "duration_secs": 1800},
        }
    },
    {"language_model": {"model_provider": "OPEN_AI", "temperature": 0}},
    {"language_model": {"model_provider": "OPEN_AI", "temperature": 1}},
]


@pytest.mark.parametrize(("fields", "field"), OUT_OF_RANGE, ids=[f"{f}-{i}" for i, (_, f) in enumerate(OUT_OF_RANGE)])
def test_config_bounds_are_enforced(raw: httpx.Client, fields: dict[str, Any], field: str) -> None:
    before = snapshot(raw)
    body = {"name": unique("bound"), "evi_version": "3", **fields}
    detail = assert_validation_error(raw.post("/v0/evi/configs", json=body))
    assert any(field in item["loc"] for item in detail), detail
    # The same body as a new version of an existing config.
    version_body = {k: v for k, v in body.items() if k != "name"}
    detail = assert_validation_error(raw.post(f"/v0/evi/configs/{only_id(raw, 'configs')}", json=version_body))
    assert any(field in item["loc"] for item in detail), detail
    assert snapshot(raw) == before


@pytest.mark.parametrize("fields", AT_THE_EDGES)
def test_config_bounds_are_inclusive(server: ServerProcess, fields: dict[str, Any]) -> None:
    with http(server) as client:
        response = client.post("/v0/evi/configs", json={"name": unique("edge"), "evi_version": "3", **fields})
        assert response.status_code == 201, response.text
        echoed = response.json()
        for section, values in fields.items():
            if isinstance(values, dict) and section != "timeouts":
                for k, v in values.items():
                    assert echoed[section][k] == v, (section, k)


LISTS = [
    "/v0/evi/prompts",
    "/v0/evi/tools",
    "/v0/evi/configs",
    "/v0/evi/chats",
    "/v0/evi/chat_groups",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("page_size", [0, 101, -1])
def test_page_size_bounds(raw: httpx.Client, path: str, page_size: int) -> None:
    detail = assert_validation_error(raw.get(path, params={"page_size": page_size}))
    assert detail[0]["loc"] == ["query", "page_size"], detail


@pytest.mark.parametrize("path", LISTS)
def test_page_size_edges_and_bad_page_numbers(raw: httpx.Client, path: str) -> None:
    for size in (1, 100):
        response = raw.get(path, params={"page_size": size})
        assert response.status_code == 200, response.text
        assert response.json()["page_size"] == size
    assert_validation_error(raw.get(path, params={"page_number": -1}))
    assert_validation_error(raw.get(path, params={"page_number": "first"}))


def test_page_size_bounds_on_versions_and_history(raw: httpx.Client) -> None:
    for kind in ("prompts", "tools", "configs"):
        assert_validation_error(raw.get(f"/v0/evi/{kind}/{only_id(raw, kind)}", params={"page_size": 101}))
    for path in (f"/v0/evi/chats/{UNKNOWN_ID}", f"/v0/evi/chat_groups/{UNKNOWN_ID}"):
        assert_validation_error(raw.get(path, params={"page_size": 0}))


def test_malformed_json_is_422(raw: httpx.Client) -> None:
    before = snapshot(raw)
    headers = {"content-type": "application/json"}
    for path in ("/v0/evi/prompts", "/v0/evi/tools", "/v0/evi/configs"):
        for text in ('{"name": "x", ', "not json at all", "", "[1, 2]", "null"):
            assert_validation_error(raw.post(path, content=text, headers=headers))
    assert_validation_error(raw.patch(f"/v0/evi/prompts/{only_id(raw, 'prompts')}", content="{", headers=headers))
    assert snapshot(raw) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v0/evi/prompts", {"name": 123, "text": "x"}),
        ("/v0/evi/prompts", {"name": "wrong-types", "text": ["x"]}),
        ("/v0/evi/prompts", {"name": "wrong-types", "text": "x", "prompt_expansion": "yes please"}),
        ("/v0/evi/prompts", {"text": "missing name"}),
        ("/v0/evi/prompts", {"name": "", "text": "empty name"}),
        ("/v0/evi/tools", {"name": "wrong_types", "parameters": {"type": "object"}}),
        ("/v0/evi/tools", {"name": "has spaces", "parameters": PARAMS}),
        ("/v0/evi/configs", {"name": "wrong-types", "evi_version": "3", "turn_detection": "fast"}),
        ("/v0/evi/configs", {"name": "wrong-types", "evi_version": "3", "tools": {"id": UNKNOWN_ID}}),
        ("/v0/evi/configs", {"name": "wrong-types", "evi_version": "3", "interruption": {"min_interruption_ms": "x"}}),
        ("/v0/evi/configs", {"name": "wrong-types", "evi_version": "3", "prompt": {"id": UNKNOWN_ID, "text": "both"}}),
        ("/v0/evi/configs", {"name": "wrong-types", "evi_version": "3", "prompt": {}}),
        ("/v0/evi/configs", {"name": "wrong-types"}),
        ("/v0/evi/configs", {"name": ["a"], "evi_version": "3"}),
    ],
)
def test_wrong_types_are_422(raw: httpx.Client, path: str, body: dict[str, Any]) -> None:
    before = snapshot(raw)
    assert_validation_error(raw.post(path, json=body))
    assert snapshot(raw) == before


def test_huge_body_is_413_json(raw: httpx.Client) -> None:
    before = snapshot(raw)
    huge = {"name": unique("huge"), "text": "x" * (1024 * 1024 + 10)}
    assert_error_body(raw.post("/v0/evi/prompts", json=huge), 413)

    def chunks() -> Iterator[bytes]:  # no content-length: the limit counts what arrives
        yield b'{"name": "streamed", "text": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    assert_error_body(raw.post("/v0/evi/prompts", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert snapshot(raw) == before

    name = unique("streamed")

    def small_chunks() -> Iterator[bytes]:  # a chunked body under the limit reaches the app whole
        yield json.dumps({"name": name, "text": "z" * 100_000})[:50].encode()
        yield json.dumps({"name": name, "text": "z" * 100_000})[50:].encode()

    accepted = raw.post("/v0/evi/prompts", content=small_chunks(), headers={"content-type": "application/json"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["name"] == name and len(accepted.json()["text"]) == 100_000
    raw.delete(f"/v0/evi/prompts/{accepted.json()['id']}")
    assert snapshot(raw) == before


@pytest.mark.parametrize("kind", ["prompts", "tools", "configs"])
def test_unknown_ids_are_404(raw: httpx.Client, kind: str) -> None:
    bodies = {
        "prompts": {"text": "x"},
        "tools": {"parameters": PARAMS},
        "configs": {"evi_version": "3"},
    }
    name = {"name": "renamed_x"}
    base = f"/v0/evi/{kind}/{UNKNOWN_ID}"
    before = snapshot(raw)
    for response in (
        raw.get(base),
        raw.post(base, json=bodies[kind]),
        raw.patch(base, json=name),
        raw.delete(base),
        raw.get(f"{base}/version/0"),
        raw.patch(f"{base}/version/0", json={"version_description": "x"}),
        raw.delete(f"{base}/version/0"),
    ):
        assert_error_body(response, 404)
    known = f"/v0/evi/{kind}/{only_id(raw, kind)}"
    for response in (
        raw.get(f"{known}/version/5"),
        raw.patch(f"{known}/version/5", json={"version_description": "x"}),
        raw.delete(f"{known}/version/5"),
    ):
        assert_error_body(response, 404)
    for version in ("latest", "1.5", "one"):
        assert_validation_error(raw.get(f"{known}/version/{version}"))
        assert_validation_error(raw.delete(f"{known}/version/{version}"))
        assert_validation_error(raw.patch(f"{known}/version/{version}", json={"version_description": "x"}))
    assert snapshot(raw) == before


def test_unknown_chats_and_groups_are_404(raw: httpx.Client) -> None:
    for path in (
        f"/v0/evi/chats/{UNKNOWN_ID}",
        f"/v0/evi/chats/{UNKNOWN_ID}/audio",
        f"/v0/evi/chat_groups/{UNKNOWN_ID}",
        f"/v0/evi/chat_groups/{UNKNOWN_ID}/events",
        f"/v0/evi/chat_groups/{UNKNOWN_ID}/audio",
    ):
        assert_error_body(raw.get(path), 404)


def test_send_to_unknown_chat(raw: httpx.Client) -> None:
    path = f"/v0/evi/chat/{UNKNOWN_ID}/send"
    assert_error_body(raw.post(path, json={"type": "user_input", "text": "hello"}), 404)
    assert_error_body(raw.post(path, json={"type": "pause_assistant_message"}), 404)
    assert_validation_error(raw.post(path, json={"type": "no_such_message"}))
    assert_validation_error(raw.post(path, json={"type": "user_input"}))
    assert_validation_error(raw.post(path, json={"text": "no type"}))
    assert_validation_error(raw.post(path, content="{", headers={"content-type": "application/json"}))


def test_unknown_routes_and_methods_are_json(raw: httpx.Client) -> None:
    assert_error_body(raw.get("/v0/evi/nothing-here"), 404)
    assert_error_body(raw.put("/v0/evi/prompts", json={}), 405)


def test_bad_patches_are_422_and_change_nothing(raw: httpx.Client) -> None:
    before = snapshot(raw)
    tool = f"/v0/evi/tools/{only_id(raw, 'tools')}"
    prompt = f"/v0/evi/prompts/{only_id(raw, 'prompts')}"
    config = f"/v0/evi/configs/{only_id(raw, 'configs')}"
    for path, body in (
        (tool, {"name": "has spaces"}),
        (tool, {"name": ""}),
        (tool, {}),
        (prompt, {"name": "x" * 513}),
        (prompt, {"name": None}),
        (config, {"name": 7}),
        (f"{prompt}/version/0", {"version_description": "x" * 5000}),
        (f"{config}/version/0", {"version_description": ["not", "text"]}),
    ):
        assert_validation_error(raw.patch(path, json=body))
    for path in (prompt, tool, config):
        assert_validation_error(raw.get(path, params={"restrict_to_most_recent": "perhaps"}))
    assert_validation_error(raw.get("/v0/evi/configs", params={"restrict_to_most_recent": "perhaps"}))
    refs = (
        {"prompt": {"id": only_id(raw, "prompts"), "version": -1}},
        {"tools": [{"id": only_id(raw, "tools"), "version": -1}]},
        {"builtin_tools": [{"name": "launch_rockets"}]},
        {"voice": {"provider": "HUME_AI"}},
    )
    for body in refs:
        assert_validation_error(raw.post("/v0/evi/configs", json={"name": unique("refs"), "evi_version": "3", **body}))
    assert snapshot(raw) == before
