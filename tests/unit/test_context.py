"""Conversation context: resumed history keeps spoken turns' scores; event_limit counts context events."""

from __future__ import annotations

import json

from openevi.chat.context import CONTEXT_EVENT_TYPES, rebuild_history
from openevi.store.models import ChatEvent


def event(type_: str, text: str | None = None, **fields: str) -> ChatEvent:
    return ChatEvent(type=type_, message_text=text, **fields)


def test_resumed_spoken_turns_keep_their_scores_and_suffix() -> None:
    scores = {"Sadness": 0.7, "Calmness": 0.2, "Tiredness": 0.4}
    history = rebuild_history(
        [
            event("USER_MESSAGE", "I lost my keys", emotion_features=json.dumps(scores)),
            event("AGENT_MESSAGE", "Oh no, let us look together."),
            event("USER_MESSAGE", "typed words"),
        ]
    )
    spoken, answer, typed = history
    assert spoken.content.startswith("I lost my keys {") and spoken.content.split("{")[0].strip() == "I lost my keys"
    assert spoken.emotions is not None and spoken.emotions["Sadness"] == 0.7
    assert answer.role == "assistant"
    assert typed.content == "typed words" and typed.emotions is None


def test_only_conversation_events_rebuild_context() -> None:
    assert {"USER_MESSAGE", "AGENT_MESSAGE", "FUNCTION_CALL", "FUNCTION_CALL_RESPONSE"} == CONTEXT_EVENT_TYPES
    history = rebuild_history(
        [event("SYSTEM_PROMPT", "be nice"), event("USER_INTERRUPTION"), event("USER_MESSAGE", "hi")]
    )
    assert [m.content for m in history] == ["hi"]
