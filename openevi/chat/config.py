"""ChatConfig: what a chat needs of its stored config, typed and with every default filled, built once.

The REST view of a config (`services.configs.render_configs`) is a dict shaped like the spec; the
engine reads this instead, so a missing key or an older stored body can never mean two different
defaults in two places (all defaults live in `schemas/config_defaults.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openevi.schemas import config_defaults as defaults


@dataclass(frozen=True)
class FunctionTool:
    """A user-defined tool the model may call (answered by the client)."""

    name: str
    parameters: str
    description: str | None = None
    fallback_content: str | None = None


@dataclass(frozen=True)
class BuiltinTool:
    """A built-in tool (`hang_up`, `web_search`) run by the server."""

    name: str
    fallback_content: str | None = None


@dataclass(frozen=True)
class EventMessage:
    """A configured event message (`on_new_chat`, `on_inactivity_timeout`, `on_max_duration_timeout`)."""

    enabled: bool = False
    text: str | None = None


@dataclass(frozen=True)
class Timeout:
    enabled: bool
    duration_s: int


@dataclass(frozen=True)
class TurnDetection:
    end_of_turn_silence_ms: int
    prefix_padding_ms: int
    speech_detection_threshold: float


@dataclass(frozen=True)
class ChatConfig:
    """A chat's configuration; `ChatConfig()` is a chat without a config (all defaults)."""

    id: str | None = None
    version: int | None = None
    prompt_text: str | None = None
    language_model: dict[str, Any] | None = None
    """The config's `language_model` as stored (the language-model registry reads it)."""
    voice: dict[str, Any] | None = None
    tools: tuple[FunctionTool, ...] = ()
    builtin_tools: tuple[BuiltinTool, ...] = ()
    webhooks: tuple[dict[str, Any], ...] = ()
    on_new_chat: EventMessage = field(default_factory=EventMessage)
    on_inactivity_timeout: EventMessage = field(default_factory=EventMessage)
    on_max_duration_timeout: EventMessage = field(default_factory=EventMessage)
    inactivity: Timeout = Timeout(
        bool(defaults.TIMEOUTS["inactivity"]["enabled"]), int(defaults.TIMEOUTS["inactivity"]["duration_secs"])
    )
    max_duration: Timeout = Timeout(
        bool(defaults.TIMEOUTS["max_duration"]["enabled"]), int(defaults.TIMEOUTS["max_duration"]["duration_secs"])
    )
    nudge_interval_s: float | None = None
    """Seconds of user silence before one nudge; None: nudges are off."""
    turn_detection: TurnDetection = TurnDetection(
        int(defaults.TURN_DETECTION["end_of_turn_silence_ms"]),
        int(defaults.TURN_DETECTION["prefix_padding_ms"]),
        float(defaults.TURN_DETECTION["speech_detection_threshold"]),
    )
    min_interruption_ms: int = int(defaults.INTERRUPTION["min_interruption_ms"])

    @property
    def temperature(self) -> float | None:
        value = (self.language_model or {}).get("temperature")
        return float(value) if value is not None else None

    def event_message(self, name: str) -> EventMessage:
        """One of the three event messages by its config name."""
        found = {
            "on_new_chat": self.on_new_chat,
            "on_inactivity_timeout": self.on_inactivity_timeout,
            "on_max_duration_timeout": self.on_max_duration_timeout,
        }.get(name)
        if found is None:
            raise KeyError(name)
        return found

    @classmethod
    def from_rendered(cls, config: dict[str, Any] | None) -> ChatConfig:
        """From the REST view of a stored config version (None: no config)."""
        if not config:
            return cls()
        base = cls()
        messages = config.get("event_messages") or {}
        timeouts = config.get("timeouts") or {}
        nudges = {**defaults.NUDGES, **_present(config.get("nudges"))}
        detection = {**defaults.TURN_DETECTION, **_present(config.get("turn_detection"))}
        interruption = {**defaults.INTERRUPTION, **_present(config.get("interruption"))}
        interval = nudges.get("interval_secs")
        return cls(
            id=config.get("id"),
            version=config.get("version"),
            prompt_text=(config.get("prompt") or {}).get("text"),
            language_model=config.get("language_model"),
            voice=config.get("voice"),
            tools=tuple(
                FunctionTool(
                    name=t["name"],
                    parameters=t.get("parameters") or '{"type": "object", "properties": {}}',
                    description=t.get("description"),
                    fallback_content=t.get("fallback_content"),
                )
                for t in config.get("tools") or []
            ),
            builtin_tools=tuple(
                BuiltinTool(name=b["name"], fallback_content=b.get("fallback_content"))
                for b in config.get("builtin_tools") or []
            ),
            webhooks=tuple(config.get("webhooks") or ()),
            on_new_chat=_event_message(messages.get("on_new_chat")),
            on_inactivity_timeout=_event_message(messages.get("on_inactivity_timeout")),
            on_max_duration_timeout=_event_message(messages.get("on_max_duration_timeout")),
            inactivity=_timeout(timeouts.get("inactivity"), base.inactivity),
            max_duration=_timeout(timeouts.get("max_duration"), base.max_duration),
            nudge_interval_s=float(interval) if nudges.get("enabled") and interval else None,
            turn_detection=TurnDetection(
                int(detection["end_of_turn_silence_ms"]),
                int(detection["prefix_padding_ms"]),
                float(detection["speech_detection_threshold"]),
            ),
            min_interruption_ms=int(interruption["min_interruption_ms"]),
        )


def _present(values: dict[str, Any] | None) -> dict[str, Any]:
    """The keys that carry a value (a stored null means "the default")."""
    return {k: v for k, v in (values or {}).items() if v is not None}


def _event_message(spec: dict[str, Any] | None) -> EventMessage:
    spec = spec or {}
    return EventMessage(enabled=bool(spec.get("enabled")), text=spec.get("text"))


def _timeout(spec: dict[str, Any] | None, default: Timeout) -> Timeout:
    given = _present(spec)
    return Timeout(
        enabled=bool(given.get("enabled", default.enabled)),
        duration_s=int(given.get("duration_secs", default.duration_s)),
    )
