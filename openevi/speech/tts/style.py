"""A reply voice that follows the user: a delivery style per sentence, from the user's emotion and the words.

The style is chosen from the user's last measured emotions (the prosody scores of their turn) and
the reply sentence's own valence (VADER): comforting and slower for sadness or distress, steady for
anxiety, calm and lower for anger, brighter and quicker for joy or excitement, neutral otherwise.
It is rendered by changing the voice the sentence is spoken with (`styled`): Piper's own controls
(length scale, noise scales, volume) and the pitch level and range through the WORLD shift. First
audio waits for a reply's whole first sentence to be rendered, so that one keeps its pitch (a WORLD
pass costs ~20 ms) and is slowed by at most FIRST_MAX_PACE (a longer sentence takes longer to render).
A remote TTS gets the style as `instructions` text. Measured in benchmarks/reply_style.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from openevi.speech.prosody.acoustic import text_valence
from openevi.speech.voices import Voice

__all__ = ["FIRST_MAX_PACE", "STYLES", "DeliveryStyle", "choose_style", "styled"]


@dataclass(frozen=True)
class DeliveryStyle:
    """How a sentence is delivered, as ratios to the voice's own rendering."""

    name: str
    pace: float = 1.0  # phoneme length (above 1: slower)
    pitch: float = 1.0  # F0 level
    pitch_range: float = 1.0  # F0 excursions around the voice's level (below 1: flatter)
    noise: float = 1.0  # Piper's noise scales: variation of timbre and timing
    volume: float = 1.0
    instructions: str = ""  # for a remote TTS that accepts them (OpenAI's gpt-4o-mini-tts)


STYLES: dict[str, DeliveryStyle] = {
    "neutral": DeliveryStyle("neutral"),
    "comforting": DeliveryStyle(
        "comforting", pace=1.25, pitch=0.95, pitch_range=0.7, noise=0.7, volume=0.8,
        instructions="Speak softly, slowly and warmly, in a gentle, comforting tone.",
    ),
    "steady": DeliveryStyle(
        "steady", pace=1.12, pitch=0.97, pitch_range=0.7, noise=0.7, volume=0.9,
        instructions="Speak in a calm, steady and reassuring tone, evenly paced.",
    ),
    "calm": DeliveryStyle(
        "calm", pace=1.15, pitch=0.92, pitch_range=0.7, noise=0.75, volume=0.85,
        instructions="Speak calmly and evenly, a little lower, never raising your voice.",
    ),
    "bright": DeliveryStyle(
        "bright", pace=0.85, pitch=1.08, pitch_range=1.3, noise=1.1, volume=1.0,
        instructions="Speak brightly and a little quicker, with a warm, upbeat tone.",
    ),
}  # fmt: skip

# The user's emotions that call for each style (the strongest group wins).
_CALLS: dict[str, tuple[str, ...]] = {
    "comforting": ("sadness", "distress", "pain", "empathic_pain", "disappointment", "guilt", "shame"),
    "steady": ("anxiety", "fear", "horror", "confusion", "doubt", "awkwardness", "embarrassment"),
    "calm": ("anger", "contempt", "disgust", "envy"),
    "bright": ("joy", "excitement", "amusement", "ecstasy", "triumph", "surprise_positive", "pride"),
}
# Read neutral speech tops out near 0.4 (docs/prosody.md), so only a score clearly above it calls for
# a style; below it the reply stays neutral.
CALL_THRESHOLD = 0.45
# The reply's own words: a clearly happy sentence is said brightly, a clearly sad one comfortingly,
# when the user's voice called for nothing else.
WORDS_THRESHOLD = 0.5
FIRST_MAX_PACE = 1.05  # ~+15 ms on a 300 ms first render


def choose_style(user_emotions: Mapping[str, float] | None, sentence: str) -> DeliveryStyle:
    """The delivery style for one reply sentence."""
    if user_emotions:
        strength = {style: max(user_emotions.get(name, 0.0) for name in names) for style, names in _CALLS.items()}
        style, score = max(strength.items(), key=lambda item: item[1])
        if score >= CALL_THRESHOLD:
            return STYLES[style]
    words = text_valence(sentence)
    if words is not None and words >= WORDS_THRESHOLD:
        return STYLES["bright"]
    if words is not None and words <= -WORDS_THRESHOLD:
        return STYLES["comforting"]
    return STYLES["neutral"]


def styled(voice: Voice, style: DeliveryStyle, *, first: bool = False) -> Voice:
    """`voice` delivering `style`; for a reply's `first` sentence, without the pitch and with a capped slowing."""
    if style.name == "neutral":
        return voice
    return dataclasses.replace(
        voice,
        pace=voice.pace * (min(style.pace, FIRST_MAX_PACE) if first else style.pace),
        pitch=voice.pitch if first else voice.pitch * style.pitch,
        pitch_range=voice.pitch_range if first else voice.pitch_range * style.pitch_range,
        noise=voice.noise * style.noise,
        volume=voice.volume * style.volume,
        instructions=style.instructions,
    )
