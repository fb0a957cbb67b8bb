"""The chat vocabulary shared by the engine, the store and the API: statuses, event types, roles.

Values are the spec's strings (`ReturnChatStatus`, `ReturnChatEventType`, `ReturnChatEventRole`);
`StrEnum` members compare equal to those strings, so stored rows and wire bodies need no mapping.
"""

from __future__ import annotations

from enum import StrEnum


class ChatStatus(StrEnum):
    """Where a chat is in its life (`ReturnChatStatus`)."""

    ACTIVE = "ACTIVE"
    USER_ENDED = "USER_ENDED"
    USER_TIMEOUT = "USER_TIMEOUT"
    MAX_DURATION_TIMEOUT = "MAX_DURATION_TIMEOUT"
    INACTIVITY_TIMEOUT = "INACTIVITY_TIMEOUT"
    ERROR = "ERROR"


class EventType(StrEnum):
    """What a stored chat event is (`ReturnChatEventType`)."""

    AGENT_MESSAGE = "AGENT_MESSAGE"
    ASSISTANT_PROSODY = "ASSISTANT_PROSODY"
    CHAT_START_MESSAGE = "CHAT_START_MESSAGE"
    CHAT_END_MESSAGE = "CHAT_END_MESSAGE"
    FUNCTION_CALL = "FUNCTION_CALL"
    FUNCTION_CALL_RESPONSE = "FUNCTION_CALL_RESPONSE"
    PAUSE_ONSET = "PAUSE_ONSET"
    RESUME_ONSET = "RESUME_ONSET"
    SESSION_SETTINGS = "SESSION_SETTINGS"
    SYSTEM_PROMPT = "SYSTEM_PROMPT"
    USER_INTERRUPTION = "USER_INTERRUPTION"
    USER_MESSAGE = "USER_MESSAGE"
    USER_RECORDING_START_MESSAGE = "USER_RECORDING_START_MESSAGE"


class EventRole(StrEnum):
    """Who an event is from (`ReturnChatEventRole`)."""

    USER = "USER"
    AGENT = "AGENT"
    SYSTEM = "SYSTEM"
    TOOL = "TOOL"
