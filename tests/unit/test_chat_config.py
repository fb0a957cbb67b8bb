"""ChatConfig: the engine's typed view of a stored config, every default from one place."""

from __future__ import annotations

from openevi.chat.config import ChatConfig, EventMessage, TurnDetection
from openevi.schemas import config_defaults as defaults
from openevi.schemas.chat_types import ChatStatus, EventRole, EventType
from tests.support.spec import load_spec


def test_no_config_means_the_documented_defaults() -> None:
    config = ChatConfig.from_rendered(None)
    assert config == ChatConfig()
    assert config.turn_detection == TurnDetection(800, 300, 0.5)
    assert config.turn_detection.prefix_padding_ms == defaults.TURN_DETECTION["prefix_padding_ms"]
    assert config.min_interruption_ms == 800
    assert config.inactivity.enabled and config.inactivity.duration_s == 600
    assert config.max_duration.duration_s == 1800
    assert config.nudge_interval_s is None and config.temperature is None
    assert config.on_new_chat == EventMessage(False, None)


def test_a_rendered_config_with_nulls_and_partial_sections() -> None:
    config = ChatConfig.from_rendered(
        {
            "id": "c1",
            "version": 3,
            "prompt": {"text": "Be kind."},
            "language_model": {"model_provider": "OPEN_AI", "temperature": 0.2},
            "tools": [{"name": "get_weather", "parameters": '{"type":"object"}', "description": None}],
            "builtin_tools": [{"name": "hang_up", "fallback_content": None}],
            "event_messages": {"on_new_chat": {"enabled": True, "text": "Hi!"}},
            "timeouts": {"inactivity": {"enabled": False, "duration_secs": None}},
            "nudges": {"enabled": True, "interval_secs": 15},
            "turn_detection": {"end_of_turn_silence_ms": 500, "prefix_padding_ms": None},
            "interruption": {"min_interruption_ms": None},
            "webhooks": [{"url": "https://example.test/hook", "events": ["chat_ended"]}],
        }
    )
    assert (config.id, config.version, config.prompt_text, config.temperature) == ("c1", 3, "Be kind.", 0.2)
    assert [t.name for t in config.tools] == ["get_weather"] and config.builtin_tools[0].name == "hang_up"
    assert config.on_new_chat == EventMessage(True, "Hi!") and config.event_message("on_new_chat").text == "Hi!"
    assert config.inactivity.enabled is False and config.inactivity.duration_s == 600  # null → default
    assert config.nudge_interval_s == 15.0
    assert config.turn_detection == TurnDetection(500, 300, 0.5)
    assert config.min_interruption_ms == 800
    assert config.webhooks[0]["events"] == ["chat_ended"]


def test_nudges_need_enabled_and_an_interval() -> None:
    assert ChatConfig.from_rendered({"nudges": {"enabled": False, "interval_secs": 5}}).nudge_interval_s is None
    assert ChatConfig.from_rendered({"nudges": {"enabled": True, "interval_secs": None}}).nudge_interval_s is None


def test_the_shared_vocabulary_is_the_specs_strings() -> None:
    assert ChatStatus.USER_ENDED == "USER_ENDED" and f"{ChatStatus.ERROR}" == "ERROR"
    assert EventType("USER_MESSAGE") is EventType.USER_MESSAGE


def test_the_enums_match_the_spec() -> None:
    schemas = load_spec()["components"]["schemas"]
    assert [s.value for s in ChatStatus] == schemas["ReturnChatStatus"]["enum"]
    assert sorted(t.value for t in EventType) == sorted(schemas["ReturnChatEventType"]["enum"])
    assert sorted(r.value for r in EventRole) == sorted(schemas["ReturnChatEventRole"]["enum"])
