"""Configs through the official SDK: versions, references, defaults, webhooks, voices."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hume.core.api_error import ApiError
from hume.empathic_voice import (
    PostedBuiltinTool,
    PostedConfigPromptSpec,
    PostedEllmModel,
    PostedUserDefinedToolSpec,
    PostedWebhookSpec,
    VoiceId,
    VoiceName,
)
from hume.empathic_voice.configs.types import PostedConfigEllmModel, PostedConfigPrompt

from tests.integration.support import (
    assert_validation_error,
    async_client,
    http,
    new_account_key,
    sync_client,
    unique,
    validate_spec,
)
from tests.server import ServerProcess

PARAMS = json.dumps({"type": "object", "properties": {"q": {"type": "string"}}})


@pytest.fixture(scope="module")
def key(server: ServerProcess) -> str:
    return new_account_key(server, "configs")


def test_new_config_has_defaults(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("defaults")
    cfg = ev.configs.create_config(name=name, evi_version="3", version_description="plain")
    assert (cfg.name, cfg.version, cfg.evi_version, cfg.version_description) == (name, 0, "3", "plain")
    assert cfg.turn_detection is not None
    td = cfg.turn_detection
    assert (td.end_of_turn_silence_ms, td.prefix_padding_ms, td.speech_detection_threshold) == (800, 300, 0.5)
    assert cfg.interruption is not None and cfg.interruption.min_interruption_ms == 800
    assert cfg.timeouts is not None and cfg.timeouts.inactivity is not None and cfg.timeouts.max_duration is not None
    assert (cfg.timeouts.inactivity.enabled, cfg.timeouts.inactivity.duration_secs) == (True, 600)
    assert (cfg.timeouts.max_duration.enabled, cfg.timeouts.max_duration.duration_secs) == (True, 1800)
    assert cfg.event_messages is not None
    for spec in (cfg.event_messages.on_new_chat, cfg.event_messages.on_inactivity_timeout):
        assert spec is not None and spec.enabled is False
    assert cfg.nudges is not None and cfg.nudges.enabled is False
    assert cfg.ellm_model is not None and cfg.ellm_model.allow_short_responses is False
    assert cfg.tools == [] and cfg.builtin_tools == [] and cfg.webhooks == []
    assert cfg.prompt is None and cfg.voice is None

    with http(server, key) as raw:
        body = raw.get(f"/v0/evi/configs/{cfg.id}/version/0").json()
    validate_spec("return_config", body)


def test_config_version_lifecycle_sync(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("lifecycle")
    v0 = ev.configs.create_config(name=name, evi_version="3", version_description="zero")
    v1 = ev.configs.create_config_version(
        id=v0.id,
        evi_version="4-mini",
        version_description="one",
        turn_detection={"end_of_turn_silence_ms": 1200},
        interruption={"min_interruption_ms": 300},
    )
    assert (v1.id, v1.version, v1.evi_version) == (v0.id, 1, "4-mini")
    assert v1.turn_detection is not None and v1.turn_detection.end_of_turn_silence_ms == 1200
    assert v1.turn_detection.prefix_padding_ms == 300  # unset fields keep their defaults
    assert v1.interruption is not None and v1.interruption.min_interruption_ms == 300

    got = ev.configs.get_config_version(id=v0.id, version=0)
    assert got.evi_version == "3" and got.version_description == "zero"
    all_versions = [c.version for c in ev.configs.list_config_versions(id=v0.id, restrict_to_most_recent=False)]
    assert all_versions == [0, 1]
    assert [c.version for c in ev.configs.list_config_versions(id=v0.id)] == [1]

    renamed = unique("renamed")
    ev.configs.update_config_name(id=v0.id, name=renamed)
    assert {c.name for c in ev.configs.list_config_versions(id=v0.id, restrict_to_most_recent=False)} == {renamed}

    patched = ev.configs.update_config_description(id=v0.id, version=1, version_description="patched")
    assert patched.version == 1 and patched.version_description == "patched" and patched.evi_version == "4-mini"
    assert ev.configs.get_config_version(id=v0.id, version=0).version_description == "zero"

    ev.configs.delete_config_version(id=v0.id, version=0)
    with pytest.raises(ApiError) as missing:
        ev.configs.get_config_version(id=v0.id, version=0)
    assert missing.value.status_code == 404
    ev.configs.delete_config(id=v0.id)
    assert list(ev.configs.list_configs(name=renamed)) == []
    with pytest.raises(ApiError) as gone:
        ev.configs.create_config_version(id=v0.id, evi_version="3")
    assert gone.value.status_code == 404


async def test_config_version_lifecycle_async(server: ServerProcess, key: str) -> None:
    ev = async_client(server, key).empathic_voice
    name = unique("async")
    v0 = await ev.configs.create_config(name=name, evi_version="3")
    v1 = await ev.configs.create_config_version(id=v0.id, evi_version="3", nudges={"enabled": True})
    assert v1.version == 1 and v1.nudges is not None and v1.nudges.enabled is True
    pager = await ev.configs.list_configs(name=name, restrict_to_most_recent=False)
    assert [c.version async for c in pager] == [0, 1]
    versions = await ev.configs.list_config_versions(id=v0.id, restrict_to_most_recent=False, page_size=1)
    assert [c.version async for c in versions] == [0, 1]
    await ev.configs.update_config_name(id=v0.id, name=name + "-b")
    assert (await ev.configs.get_config_version(id=v0.id, version=1)).name == name + "-b"
    patched = await ev.configs.update_config_description(id=v0.id, version=0, version_description="d")
    assert patched.version_description == "d"
    await ev.configs.delete_config_version(id=v0.id, version=1)
    assert [c.version async for c in await ev.configs.list_config_versions(id=v0.id)] == [0]
    await ev.configs.delete_config(id=v0.id)
    with pytest.raises(ApiError) as gone:
        await ev.configs.get_config_version(id=v0.id, version=0)
    assert gone.value.status_code == 404


def test_config_names_are_unique_per_account(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    name = unique("taken")
    first = ev.configs.create_config(name=name, evi_version="3")
    second = ev.configs.create_config(name=unique("second"), evi_version="3")
    with http(server, key) as raw:
        assert raw.post("/v0/evi/configs", json={"name": name, "evi_version": "3"}).status_code == 400
        assert raw.patch(f"/v0/evi/configs/{second.id}", json={"name": name}).status_code == 400
    assert [c.id for c in ev.configs.list_configs(name=name)] == [first.id]
    assert ev.configs.get_config_version(id=second.id, version=0).name == second.name


def test_prompt_references_fixed_and_latest(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    prompt = ev.prompts.create_prompt(name=unique("p"), text="Prompt v0.")
    assert prompt is not None
    ev.prompts.create_prompt_version(id=prompt.id, text="Prompt v1.")

    fixed = ev.configs.create_config(
        name=unique("fixed"), evi_version="3", prompt=PostedConfigPrompt(id=prompt.id, version=0)
    )
    latest = ev.configs.create_config(name=unique("latest"), evi_version="3", prompt=PostedConfigPrompt(id=prompt.id))
    assert fixed.prompt is not None and latest.prompt is not None
    assert (fixed.prompt.id, fixed.prompt.version, fixed.prompt.text) == (prompt.id, 0, "Prompt v0.")
    assert fixed.prompt.version_type == "FIXED"
    assert (latest.prompt.version, latest.prompt.text, latest.prompt.version_type) == (1, "Prompt v1.", "LATEST")

    ev.prompts.create_prompt_version(id=prompt.id, text="Prompt v2.")
    fixed_now = ev.configs.get_config_version(id=fixed.id, version=0)
    latest_now = ev.configs.get_config_version(id=latest.id, version=0)
    assert fixed_now.prompt is not None and fixed_now.prompt.text == "Prompt v0."
    assert latest_now.prompt is not None and (latest_now.prompt.version, latest_now.prompt.text) == (2, "Prompt v2.")


def test_inline_prompt_text_creates_a_prompt(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    cfg = ev.configs.create_config(
        name=unique("inline"), evi_version="3", prompt=PostedConfigPrompt(text="You are an inline prompt.")
    )
    assert cfg.prompt is not None and cfg.prompt.text == "You are an inline prompt." and cfg.prompt.id
    stored = ev.prompts.get_prompt_version(id=cfg.prompt.id, version=cfg.prompt.version or 0)
    assert stored is not None and stored.text == "You are an inline prompt."
    v1 = ev.configs.create_config_version(
        id=cfg.id, evi_version="3", prompt=PostedConfigPromptSpec(text="Second inline prompt.")
    )
    assert v1.prompt is not None and v1.prompt.text == "Second inline prompt."
    assert ev.configs.get_config_version(id=cfg.id, version=0).prompt.text == "You are an inline prompt."  # type: ignore[union-attr]


def test_tools_builtins_voice_and_webhooks(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    tool = ev.tools.create_tool(name=unique("t").replace("-", "_"), parameters=PARAMS, description="v0")
    other = ev.tools.create_tool(name=unique("u").replace("-", "_"), parameters=PARAMS, description="o0")
    assert tool is not None and other is not None
    ev.tools.create_tool_version(id=other.id, parameters=PARAMS, description="o1")
    webhook = PostedWebhookSpec(url="http://127.0.0.1:9/hook", events=["chat_started", "chat_ended"])
    cfg = ev.configs.create_config(
        name=unique("full"),
        evi_version="3",
        tools=[PostedUserDefinedToolSpec(id=tool.id, version=0), PostedUserDefinedToolSpec(id=other.id)],
        builtin_tools=[PostedBuiltinTool(name="hang_up", fallback_content="bye")],
        voice=VoiceName(name="Joe", provider="HUME_AI"),
        webhooks=[webhook],
        language_model={"model_provider": "ANTHROPIC", "model_resource": "claude-3-5-haiku-latest", "temperature": 0.3},
        event_messages={"on_new_chat": {"enabled": True, "text": "Hello!"}},
        timeouts={"inactivity": {"enabled": False}, "max_duration": {"enabled": True, "duration_secs": 300}},
    )
    assert cfg.tools is not None
    views = {t.id: t for t in cfg.tools if t}
    assert (views[tool.id].version, views[tool.id].version_type, views[tool.id].description) == (0, "FIXED", "v0")
    assert (views[other.id].version, views[other.id].version_type, views[other.id].description) == (1, "LATEST", "o1")
    assert cfg.builtin_tools is not None
    assert [(b.name, b.fallback_content) for b in cfg.builtin_tools if b] == [("hang_up", "bye")]
    assert cfg.voice is not None and cfg.voice.name == "Joe" and cfg.voice.provider == "HUME_AI"
    assert cfg.webhooks is not None
    assert [(w.url, sorted(w.events)) for w in cfg.webhooks if w] == [(webhook.url, ["chat_ended", "chat_started"])]
    assert cfg.language_model is not None and cfg.language_model.temperature == 0.3
    assert cfg.event_messages is not None and cfg.event_messages.on_new_chat is not None
    assert (cfg.event_messages.on_new_chat.enabled, cfg.event_messages.on_new_chat.text) == (True, "Hello!")
    assert cfg.timeouts is not None and cfg.timeouts.inactivity is not None and cfg.timeouts.max_duration is not None
    assert cfg.timeouts.inactivity.enabled is False and cfg.timeouts.max_duration.duration_secs == 300

    ev.tools.create_tool_version(id=other.id, parameters=PARAMS, description="o2")
    again = ev.configs.get_config_version(id=cfg.id, version=0)
    assert again.tools is not None
    assert {t.id: t.description for t in again.tools if t} == {tool.id: "v0", other.id: "o2"}

    with http(server, key) as raw:
        body = raw.get(f"/v0/evi/configs/{cfg.id}/version/0").json()
        validate_spec("return_config", body)
        paged = raw.get("/v0/evi/configs", params={"page_size": 100}).json()
        validate_spec("return_paged_configs", paged)


HUME_VOICES: list[dict[str, str]] = [
    {"provider": "HUME_AI", "name": "ITO"},
    {"provider": "HUME_AI", "name": "Ava Song"},
    {"id": "5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c"},  # Ava Song's id, as Hume's quickstart tests use it
    {"provider": "CUSTOM_VOICE", "id": "0d5f2c86-6f2e-4f1e-9c53-2a4d1c9b7e11"},
    {"provider": "CUSTOM_VOICE", "name": "My cloned voice"},
    {"name": "Nobody we know"},
]


@pytest.mark.parametrize("voice", HUME_VOICES, ids=lambda v: "+".join(f"{k}={v[k]}" for k in sorted(v)))
def test_hume_voices_are_kept_as_posted(server: ServerProcess, key: str, voice: dict[str, str]) -> None:
    ev = sync_client(server, key).empathic_voice
    posted = (VoiceId if "id" in voice else VoiceName)(**voice)
    cfg = ev.configs.create_config(name=unique("hume-voice"), evi_version="3", voice=posted)
    again = ev.configs.get_config_version(id=cfg.id, version=0)
    for shown in (cfg.voice, again.voice):
        assert shown is not None
        assert {k: getattr(shown, k) for k in voice} == voice  # exactly what was posted
        assert shown.id and shown.name and shown.provider in ("HUME_AI", "CUSTOM_VOICE")
    assert again.voice == cfg.voice
    with http(server, key) as raw:
        response = raw.post(
            "/v0/evi/configs", json={"name": unique("hume-voice-raw"), "evi_version": "3", "voice": voice}
        )
        assert response.status_code == 201, response.text
        validate_spec("return_config", response.json())
        body = raw.get(f"/v0/evi/configs/{response.json()['id']}/version/0").json()
        assert {k: body["voice"][k] for k in voice} == voice


def test_voice_defaults_filled_in(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    by_id = ev.configs.create_config(
        name=unique("v"), evi_version="3", voice=VoiceId(id="5bb7de05-c8fe-426a-8fcc-ba4fc4ce9f9c")
    )
    assert by_id.voice is not None and (by_id.voice.name, by_id.voice.provider) == ("Ava Song", "HUME_AI")
    custom = ev.configs.create_config(name=unique("v"), evi_version="3", voice=VoiceName(name="Mine"))
    assert custom.voice is not None and custom.voice.provider == "CUSTOM_VOICE"  # the API's default
    ito = [
        ev.configs.create_config(name=unique("v"), evi_version="3", voice=VoiceName(name="ITO", provider="HUME_AI"))
        for _ in range(2)
    ]
    assert ito[0].voice is not None and ito[1].voice is not None
    assert ito[0].voice.id == ito[1].voice.id  # a stable id for a voice named without one


def test_voice_without_id_or_name_is_rejected(server: ServerProcess, key: str) -> None:
    name = unique("voice")
    with http(server, key) as raw:
        detail = assert_validation_error(
            raw.post("/v0/evi/configs", json={"name": name, "evi_version": "3", "voice": {"provider": "HUME_AI"}})
        )
        assert detail[0]["loc"][:2] == ["body", "voice"], detail
        assert raw.get("/v0/evi/configs", params={"name": name}).json()["configs_page"] == []


def test_ellm_model_short_responses_inherit(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    v0 = ev.configs.create_config(
        name=unique("ellm"), evi_version="3", ellm_model=PostedConfigEllmModel(allow_short_responses=True)
    )
    assert v0.ellm_model is not None and v0.ellm_model.allow_short_responses is True
    v1 = ev.configs.create_config_version(id=v0.id, evi_version="3")
    assert v1.ellm_model is not None and v1.ellm_model.allow_short_responses is True
    v2 = ev.configs.create_config_version(
        id=v0.id, evi_version="3", ellm_model=PostedEllmModel(allow_short_responses=False)
    )
    assert v2.ellm_model is not None and v2.ellm_model.allow_short_responses is False
    v3 = ev.configs.create_config_version(id=v0.id, evi_version="3")
    assert v3.ellm_model is not None and v3.ellm_model.allow_short_responses is False


def _prompt_count(raw: Any) -> int:
    return len(raw.get("/v0/evi/prompts", params={"page_size": 100}).json()["prompts_page"])


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": {"id": "00000000-0000-4000-8000-000000000000"}},
        {"prompt": {"id": "PROMPT", "version": 7}},
        {"prompt": {"text": "inline, never kept"}, "tools": [{"id": "00000000-0000-4000-8000-000000000000"}]},
        {"prompt": {"text": "inline, never kept"}, "tools": [{"id": "TOOL", "version": 9}]},
    ],
)
def test_missing_references_write_nothing(server: ServerProcess, body: dict[str, Any]) -> None:
    key = new_account_key(server, "refs")
    ev = sync_client(server, key).empathic_voice
    prompt = ev.prompts.create_prompt(name="p", text="real")
    tool = ev.tools.create_tool(name="t", parameters=PARAMS)
    assert prompt is not None and tool is not None
    text = json.dumps(body).replace("PROMPT", prompt.id).replace("TOOL", tool.id)
    name = unique("broken")
    with http(server, key) as raw:
        response = raw.post("/v0/evi/configs", json={"name": name, "evi_version": "3", **json.loads(text)})
        assert response.status_code == 400, response.text
        assert {"error", "message", "code"} <= set(response.json())
        assert raw.get("/v0/evi/configs").json()["configs_page"] == []
        assert _prompt_count(raw) == 1

        cfg = raw.post("/v0/evi/configs", json={"name": name, "evi_version": "3"}).json()
        again = raw.post(f"/v0/evi/configs/{cfg['id']}", json={"evi_version": "3", **json.loads(text)})
        assert again.status_code == 400, again.text
        versions = raw.get(f"/v0/evi/configs/{cfg['id']}", params={"restrict_to_most_recent": False}).json()
        assert [c["version"] for c in versions["configs_page"]] == [0]
        assert _prompt_count(raw) == 1
        # The version number was not used up by the failed attempt.
        assert raw.post(f"/v0/evi/configs/{cfg['id']}", json={"evi_version": "3"}).json()["version"] == 1


def test_list_configs_paging(server: ServerProcess) -> None:
    key = new_account_key(server, "config-pages")
    ev = sync_client(server, key).empathic_voice
    made = [ev.configs.create_config(name=f"c{i}", evi_version="3").id for i in range(5)]
    ev.configs.create_config_version(id=made[1], evi_version="4-mini")
    page = ev.configs.list_configs(page_number=0, page_size=2)
    assert page.response.total_pages == 3 and [c.id for c in page.response.configs_page] == made[:2]
    assert [c.id for c in ev.configs.list_configs(page_size=2)] == made
    latest = {c.id: c.version for c in ev.configs.list_configs()}
    assert latest[made[1]] == 1
    assert len(list(ev.configs.list_configs(restrict_to_most_recent=False))) == 6
    assert [c.id for c in ev.configs.list_configs(name="c3")] == [made[3]]


def test_http_webhooks_need_the_opt_in(fresh_server: ServerProcess) -> None:
    ev = sync_client(fresh_server).empathic_voice
    name = unique("hooks")
    with http(fresh_server) as raw:
        detail = assert_validation_error(
            raw.post(
                "/v0/evi/configs",
                json={
                    "name": name,
                    "evi_version": "3",
                    "webhooks": [{"url": "http://example.com/h", "events": ["chat_ended"]}],
                },
            )
        )
        assert detail[0]["loc"][:2] == ["body", "webhooks"], detail
    assert list(ev.configs.list_configs(name=name)) == []
    cfg = ev.configs.create_config(
        name=name, evi_version="3", webhooks=[PostedWebhookSpec(url="https://example.com/h", events=["tool_call"])]
    )
    assert cfg.webhooks is not None and [w.url for w in cfg.webhooks if w] == ["https://example.com/h"]


def test_configs_survive_deleted_references(server: ServerProcess, key: str) -> None:
    ev = sync_client(server, key).empathic_voice
    prompt = ev.prompts.create_prompt(name=unique("doomed"), text="v0")
    tool = ev.tools.create_tool(name=unique("doomed").replace("-", "_"), parameters=PARAMS)
    assert prompt is not None and tool is not None
    ev.prompts.create_prompt_version(id=prompt.id, text="v1")
    latest = ev.configs.create_config(
        name=unique("refs-latest"),
        evi_version="3",
        prompt=PostedConfigPrompt(id=prompt.id),
        tools=[PostedUserDefinedToolSpec(id=tool.id)],
    )
    assert latest.prompt is not None and latest.prompt.text == "v1"

    ev.prompts.delete_prompt_version(id=prompt.id, version=1)
    fallback = ev.configs.get_config_version(id=latest.id, version=0)
    assert fallback.prompt is not None and (fallback.prompt.version, fallback.prompt.text) == (0, "v0")

    ev.prompts.delete_prompt(id=prompt.id)
    ev.tools.delete_tool(id=tool.id)
    with http(server, key) as raw:
        response = raw.get(f"/v0/evi/configs/{latest.id}/version/0")
        assert response.status_code == 200, response.text
        validate_spec("return_config", response.json())
        assert response.json().get("prompt") is None and response.json()["tools"] == []
        listed = raw.get("/v0/evi/configs", params={"name": latest.name})
        assert listed.status_code == 200 and len(listed.json()["configs_page"]) == 1
