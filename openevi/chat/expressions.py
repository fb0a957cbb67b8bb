"""The user's expression measures as words, in the form EVI appends them to a user message.

EVI adds the top three expressions after the words in braces, each as an intensity and an adjective:
`"I got the job!! {extremely excited, very joyful, moderately anxious}"` (Hume's default EVI prompt
describes this form; its custom-language-model examples strip it with `content.split("{")[0]`).
"""

from __future__ import annotations

from collections.abc import Mapping

# Adjectives for the 48 expression names (openevi.speech.prosody.base.EMOTIONS).
ADJECTIVES: dict[str, str] = {
    "admiration": "admiring",
    "adoration": "adoring",
    "aesthetic_appreciation": "appreciative",
    "amusement": "amused",
    "anger": "angry",
    "anxiety": "anxious",
    "awe": "awed",
    "awkwardness": "awkward",
    "boredom": "bored",
    "calmness": "calm",
    "concentration": "focused",
    "confusion": "confused",
    "contemplation": "contemplative",
    "contempt": "contemptuous",
    "contentment": "content",
    "craving": "craving",
    "desire": "desirous",
    "determination": "determined",
    "disappointment": "disappointed",
    "disgust": "disgusted",
    "distress": "distressed",
    "doubt": "doubtful",
    "ecstasy": "ecstatic",
    "embarrassment": "embarrassed",
    "empathic_pain": "empathically pained",
    "entrancement": "entranced",
    "envy": "envious",
    "excitement": "excited",
    "fear": "fearful",
    "guilt": "guilty",
    "horror": "horrified",
    "interest": "interested",
    "joy": "joyful",
    "love": "loving",
    "nostalgia": "nostalgic",
    "pain": "pained",
    "pride": "proud",
    "realization": "realizing",
    "relief": "relieved",
    "romance": "romantic",
    "sadness": "sad",
    "satisfaction": "satisfied",
    "shame": "ashamed",
    "surprise_negative": "negatively surprised",
    "surprise_positive": "positively surprised",
    "sympathy": "sympathetic",
    "tiredness": "tired",
    "triumph": "triumphant",
}

# (lower bound of the score, word), strongest first. Hume's prompt uses these six words; it does not
# publish its cut-offs, so these even 0.09-wide bands are openevi's (docs/compatibility.md).
INTENSITIES: tuple[tuple[float, str], ...] = (
    (0.71, "extremely"),
    (0.62, "very"),
    (0.53, "quite"),
    (0.44, "moderately"),
    (0.35, "somewhat"),
    (0.0, "slightly"),
)
TOP = 3


def snake_name(name: str) -> str:
    """`"Surprise (negative)"` or `"Aesthetic Appreciation"` → `surprise_negative`, `aesthetic_appreciation`."""
    return name.strip().lower().replace(" (", "_").replace(")", "").replace(" ", "_")


def intensity(score: float) -> str:
    """The word for a score in [0, 1]."""
    for bound, word in INTENSITIES:
        if score >= bound:
            return word
    return INTENSITIES[-1][1]


def describe(scores: Mapping[str, float], count: int = TOP) -> list[str]:
    """The `count` strongest expressions as "<intensity> <adjective>", strongest first."""
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:count]
    words = []
    for name, score in ranked:
        key = snake_name(name)
        words.append(f"{intensity(score)} {ADJECTIVES.get(key, key.replace('_', ' '))}")
    return words


def expression_suffix(scores: Mapping[str, float] | None) -> str:
    """`"{very sad, somewhat anxious, slightly tired}"`, or "" when there are no scores."""
    return "{" + ", ".join(describe(scores)) + "}" if scores else ""
