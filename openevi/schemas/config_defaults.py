"""Every default a config's chat behaviour falls back to, in one place.

The REST API fills these into stored configs (so `GET` shows them), and the chat engine's
`ChatConfig` uses the same values for chats without a config or with older stored bodies.
"""

from __future__ import annotations

from typing import Any

TURN_DETECTION: dict[str, Any] = {
    "end_of_turn_silence_ms": 800,
    "prefix_padding_ms": 300,
    "speech_detection_threshold": 0.5,
}
INTERRUPTION: dict[str, Any] = {"min_interruption_ms": 800}
TIMEOUTS: dict[str, dict[str, Any]] = {
    "inactivity": {"enabled": True, "duration_secs": 600},
    "max_duration": {"enabled": True, "duration_secs": 1800},
}
NUDGES: dict[str, Any] = {"enabled": False, "interval_secs": None}
EVENT_MESSAGE_NAMES = ("on_new_chat", "on_inactivity_timeout", "on_max_duration_timeout")
