"""The expression suffix EVI appends to user messages: "{very sad, somewhat anxious, slightly tired}"."""

from __future__ import annotations

import re

import pytest

from openevi.chat.context import Conversation
from openevi.chat.expressions import ADJECTIVES, expression_suffix, intensity, snake_name
from openevi.speech.prosody.base import EMOTIONS

SUFFIX = re.compile(r"^(.*) \{((?:[a-z]+ [a-z ]+)(?:, [a-z]+ [a-z ]+){2})\}$")


def test_every_expression_has_an_adjective() -> None:
    assert set(ADJECTIVES) == set(EMOTIONS)


@pytest.mark.parametrize(
    ("score", "word"),
    [(0.0, "slightly"), (0.3, "slightly"), (0.35, "somewhat"), (0.5, "moderately"), (0.6, "quite"),
     (0.7, "very"), (0.71, "extremely"), (1.0, "extremely")],
)  # fmt: skip
def test_intensity_bands(score: float, word: str) -> None:
    assert intensity(score) == word


def test_wire_and_internal_names_read_the_same() -> None:
    assert snake_name("Surprise (negative)") == "surprise_negative"
    assert snake_name("Aesthetic Appreciation") == "aesthetic_appreciation"
    wire = {"Surprise (negative)": 0.9, "Aesthetic Appreciation": 0.5, "Empathic Pain": 0.1}
    assert expression_suffix(wire) == (
        "{extremely negatively surprised, moderately appreciative, slightly empathically pained}"
    )
    assert expression_suffix({}) == "" and expression_suffix(None) == ""


def test_user_message_has_hume_form_and_context_after_it() -> None:
    convo = Conversation()
    convo.set_context("The user is on the Pro plan.", "persistent")
    scores = dict.fromkeys(EMOTIONS, 0.01) | {"anger": 0.8, "sadness": 0.55, "confusion": 0.45}
    message = convo.user_message("No, I'm completely fine.", emotions=scores)
    first, context = message.content.split("\n\n")
    match = SUFFIX.match(first)
    assert match, first
    assert match.group(1) == "No, I'm completely fine."
    assert match.group(2) == "extremely angry, quite sad, moderately confused"
    assert context == "{Context: The user is on the Pro plan.}"
    assert message.content.split("{")[0].strip() == "No, I'm completely fine."
    assert message.emotions is not None and len(message.emotions) == 48 and message.emotions["Anger"] == 0.8
    typed = convo.user_message("typed")
    assert typed.content.startswith("typed") and "{" not in typed.content.split("\n\n")[0]
    assert typed.emotions is None
