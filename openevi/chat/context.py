"""The conversation as the language model sees it: system prompt, history, injected context."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openevi.chat.expressions import expression_suffix, snake_name
from openevi.llm.base import Message, ToolCall
from openevi.schemas import protocol as p
from openevi.schemas.messages import wire_scores

if TYPE_CHECKING:
    from openevi.chat.ports import PastEvent

DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, kind voice assistant talking with someone. Your words are spoken aloud, so answer in "
    "one to three short, natural sentences, without lists, markdown or emoji. When the user shares a "
    "feeling or a problem, first say you understand how they feel, then offer one gentle, practical idea "
    "or ask what would help. Answer questions directly and truthfully; if you don't know, say so. Kindly "
    "refuse anything dangerous, illegal or hurtful in one sentence. Words in curly braces after the "
    "user's words describe their tone of voice; match your tone to it and do not mention it."
)
CUT_OFF_NOTE = (
    "The user interrupted your last answer: they heard it only as far as the conversation shows "
    "(a sentence ending in — was cut off mid-way). Do not assume they heard the rest."
)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def fill_variables(prompt: str, variables: dict[str, Any]) -> str:
    """Replace `{{name}}` placeholders; unknown names are left as written."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            return match.group(0)
        found = variables[name]
        if isinstance(found, bool):
            return "true" if found else "false"
        if isinstance(found, float) and found.is_integer():
            return str(int(found))  # the SDK types numbers as floats: 36 arrives as 36.0
        return str(found)

    return _VARIABLE.sub(value, prompt)


# Names the model is told to answer in (Whisper's codes); another code is named as itself.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "fr": "French", "it": "Italian", "de": "German", "es": "Spanish", "pt": "Portuguese",
    "nl": "Dutch", "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "ru": "Russian", "pl": "Polish",
    "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "tr": "Turkish", "ar": "Arabic",
    "hi": "Hindi", "uk": "Ukrainian", "cs": "Czech", "el": "Greek", "he": "Hebrew", "ca": "Catalan",
}  # fmt: skip


def language_instruction(code: str) -> str:
    """The system-prompt line that asks for replies in the language `code` (ISO 639-1, as Whisper names it)."""
    name = LANGUAGE_NAMES.get(code, f"the language with code '{code}'")
    return f"The user is speaking {name}. Answer in {name}."


@dataclass
class Conversation:
    """History plus the settings that shape what the model is sent."""

    base_prompt: str | None = None
    default_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    """Used when neither the config nor the session gives a prompt (None for a custom language model,
    which writes its own words: it gets no system message then)."""
    system_prompt_override: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    persistent_context: str | None = None
    temporary_context: str | None = None
    history: list[Message] = field(default_factory=list)
    max_history: int = 200
    cut_off: bool = False
    """The assistant's last answer was interrupted: the next request says so (until it speaks again)."""
    reply_language: str | None = None
    """The language the user last spoke (detected by speech recognition); replies are asked in it."""
    user_emotions: dict[str, float] | None = None
    """The emotions measured on the user's latest turn (None for a typed one); replies' delivery follows them."""
    _spoke_other_language: bool = False

    def heard(self, language: str | None, emotions: dict[str, float] | None) -> None:
        """Note the language and emotions of the latest user turn; replies follow them from now on."""
        self.user_emotions = emotions
        if not language:
            return
        self.reply_language = language.lower()
        self._spoke_other_language |= self.reply_language != "en"

    @property
    def language_instruction(self) -> str | None:
        """What the model is told about the reply's language; None while the user has only spoken English."""
        if self.reply_language is None or not self._spoke_other_language:
            return None  # English-only chats keep the system prompt exactly as configured
        return language_instruction(self.reply_language)

    @property
    def system_prompt(self) -> str:
        prompt = self.system_prompt_override or self.base_prompt or self.default_prompt or ""
        return fill_variables(prompt, self.variables)

    def apply_settings(self, s: p.SessionSettings) -> None:
        """The prompt, variables and context a session_settings message sets."""
        fields = s.model_fields_set
        if "system_prompt" in fields:
            self.system_prompt_override = s.system_prompt
        if "variables" in fields and s.variables is not None:
            self.variables.update(s.variables)
        if "context" in fields:
            self.set_context(s.context.text if s.context else None, s.context.type if s.context else None)

    def set_context(self, text: str | None, kind: str | None) -> None:
        if text is None:
            self.persistent_context = self.temporary_context = None
        elif kind == "temporary" or kind is None:
            self.temporary_context = text
        else:  # persistent, or the legacy "editable" which replaces the persistent text
            self.persistent_context = text

    def user_message(self, text: str, *, emotions: dict[str, float] | None = None) -> Message:
        """The user turn as the model will see it: words, tone of voice, injected context.

        The tone is EVI's suffix, `"words {very sad, somewhat anxious, slightly tired}"`, so prompts
        and custom language models written for Hume read it (and strip it) the same way; the scores
        themselves ride along on the message for custom language models' `models.prosody.scores`.
        """
        parts = [f"{text} {expression_suffix(emotions)}" if emotions else text]
        for extra in (self.persistent_context, self.temporary_context):
            if extra:
                parts.append(f"{{Context: {extra}}}")
        scores = wire_scores({snake_name(k): v for k, v in emotions.items()}) if emotions else None
        return Message(role="user", content="\n\n".join(parts), emotions=scores)

    def add_user(self, text: str, *, emotions: dict[str, float] | None = None) -> None:
        """Add a user turn (a temporary context is used up by it)."""
        message = self.user_message(text, emotions=emotions)
        self.temporary_context = None
        self._append(message)

    def add_assistant(self, text: str) -> None:
        if not text.strip():
            return
        self.cut_off = False
        last = self.history[-1] if self.history else None
        if last is not None and last.role == "assistant" and not last.tool_calls:
            self.history[-1] = Message(role="assistant", content=f"{last.content} {text}".strip())
        else:
            self._append(Message(role="assistant", content=text))

    def add_tool_calls(self, calls: list[ToolCall]) -> None:
        """The model's calls join the words it said just before them (one assistant message)."""
        last = self.history[-1] if self.history else None
        if last is not None and last.role == "assistant" and not last.tool_calls:
            self.history[-1] = Message(role="assistant", content=last.content, tool_calls=tuple(calls))
        else:
            self._append(Message(role="assistant", content="", tool_calls=tuple(calls)))

    def add_tool_result(self, call: ToolCall, content: str) -> None:
        self._append(Message(role="tool", content=content, tool_call_id=call.id, name=call.name))

    def messages(self, *, extra_system: str | None = None) -> list[Message]:
        """What to send the model now."""
        note = CUT_OFF_NOTE if self.cut_off else None
        parts = (self.system_prompt, self.language_instruction, extra_system, note)
        system = "\n\n".join(part for part in parts if part)
        return [Message(role="system", content=system), *self.history] if system else list(self.history)

    def _append(self, message: Message) -> None:
        self.history.append(message)
        if len(self.history) > self.max_history:
            # Drop whole leading turns; never start on a tool result without its call.
            del self.history[: len(self.history) - self.max_history]
            while self.history and self.history[0].role == "tool":
                del self.history[0]


CONTEXT_EVENT_TYPES = frozenset({"USER_MESSAGE", "AGENT_MESSAGE", "FUNCTION_CALL", "FUNCTION_CALL_RESPONSE"})
"""The stored event types a resumed chat's context is rebuilt from (what `event_limit` counts)."""


def rebuild_history(events: Sequence[PastEvent]) -> list[Message]:
    """A conversation history from stored chat events (for `resumed_chat_group_id`)."""
    convo = Conversation(max_history=10_000)
    calls: dict[str, ToolCall] = {}
    for event in events:
        if event.type == "USER_MESSAGE" and event.message_text:
            # Spoken turns come back with their stored scores: suffix and models.prosody for CLMs.
            scores = parse_metadata(event.emotion_features)
            emotions = {str(k): float(v) for k, v in scores.items()} if scores else None
            convo.history.append(convo.user_message(event.message_text, emotions=emotions))
        elif event.type == "AGENT_MESSAGE" and event.message_text:
            convo.add_assistant(event.message_text)
        elif event.type == "FUNCTION_CALL" and (meta := parse_metadata(event.event_metadata)):
            call = ToolCall(id=meta["tool_call_id"], name=meta["name"], arguments=meta.get("parameters", "{}"))
            calls[call.id] = call
            convo.add_tool_calls([call])
        elif event.type == "FUNCTION_CALL_RESPONSE" and (meta := parse_metadata(event.event_metadata)):
            call_found = calls.get(str(meta.get("tool_call_id", "")))
            if call_found is not None:
                convo.add_tool_result(call_found, event.message_text or "")
    # A call whose answer never came would be rejected by most providers: drop it.
    answered = {m.tool_call_id for m in convo.history if m.role == "tool"}
    return [m for m in convo.history if not m.tool_calls or all(c.id in answered for c in m.tool_calls)]


def parse_metadata(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
