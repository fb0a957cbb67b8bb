"""How much one chat may be told and may store.

Every client message is checked before it is applied: the sizes of a `session_settings` (system
prompt, as rendered with its variables; context; variables; tools) and of texts (`user_input`,
`assistant_input`, tool results) have limits, and a chat has a budget of stored event bytes (the
smaller of `OPENEVI_CHAT_MAX_STORED_BYTES` and what is left of the account's storage quota when the
chat opened). A message over a limit, or one whose events would not fit the budget any more, is
refused with an `error` and not applied; the chat goes on. Events the server writes itself (answers,
transcripts, the end of the chat) are always stored: they are small and paced by the models.

Messages that store nothing but a row (pause/resume) are not free: each costs `ROW_BYTES` of the
budget, and every client message is rate limited per chat (a token bucket), so a socket toggling
pause/resume cannot queue hundreds of thousands of writes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from openevi.chat.context import _VARIABLE, Conversation
from openevi.schemas import messages as msg
from openevi.schemas import protocol as p
from openevi.settings import Settings
from openevi.store.usage import event_bytes, text_bytes

# The pacers' only sleep, replaceable in tests without touching asyncio.sleep for the whole loop.
_sleep = asyncio.sleep

E_LIMIT = ("E0104", "limit_exceeded")
E_STORAGE = ("E0105", "storage_limit_reached")
MAX_CUSTOM_SESSION_ID_BYTES = 1024  # echoed on every outgoing message, so kept short
MAX_JSON_DEPTH = 64  # tool parameter schemas nest a few levels; deeper is an attack, not a schema
# What a text-less event (pause/resume onset) costs the budget: its row, which has no text to count.
ROW_BYTES = 64
# A client past the message rate is told so at most this often; the other refusals are silent.
RATE_ERROR_EVERY_S = 1.0

Refusal = tuple[tuple[str, str], str]
QUIET: Refusal = (E_LIMIT, "")
"""A refusal the client was already told about (a message flood): dropped without another error."""


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rendered_prompt_bytes(prompt: str, variables: dict[str, Any]) -> int:
    """Size of `fill_variables(prompt, variables)`, computed without building it (a short prompt full
    of placeholders and one large value would otherwise make a huge string first)."""
    size = text_bytes(prompt)
    sizes: dict[str, int] = {}
    for match in _VARIABLE.finditer(prompt):
        name = match.group(1)
        if name in variables:
            if name not in sizes:
                sizes[name] = text_bytes(_value_text(variables[name]))
            size += sizes[name] - text_bytes(match.group(0))
    return size


def json_depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the brackets of a JSON text nest at most `limit` deep (strings are skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


class AccountBudget:
    """What an account may still store, shared by its live chats in this process (so two chats
    cannot both spend the same remainder, and bytes not yet written count at once)."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining


class MessageRate:
    """A token bucket: `rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()
        self._held_since: float | None = None  # since when every take had to wait (wait())

    async def wait(self, *, at_most_s: float = float("inf"), cost: float = 1.0) -> bool:
        """Take `cost` tokens, waiting for them if there are not enough (a flood then waits in TCP,
        not in memory). False, without waiting, once the sender has been held back for more than
        `at_most_s` on end."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            self._held_since = None
            return True
        now = self._clock()
        if self._held_since is None:
            self._held_since = now
        elif now - self._held_since > at_most_s:
            return False
        self._tokens -= cost  # a debt, paid back by the refill while this sleeps
        await _sleep(-self._tokens / self._rate)
        return True

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def take(self) -> bool:
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def spend(self, cost: float = 1.0) -> float:
        """Take `cost` tokens if at least one is left, running into debt for a cost above what is left
        (so a cost larger than the burst still passes, then waits its turn); else take nothing and
        return the seconds until a token is back."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= cost
            return 0.0
        return (1.0 - self._tokens) / self._rate if self._rate else float("inf")

    def charge(self, cost: float) -> None:
        """Take `cost` tokens whatever is left (for work already admitted): later takes wait longer."""
        self._refill()
        self._tokens -= cost


class ChatLimits:
    """The limits of one chat and what it has stored so far."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stored = 0
        self.budget: int | None = settings.chat_max_stored_bytes or None
        self.account: AccountBudget | None = None
        rate = settings.chat_max_messages_per_s
        self._rate = MessageRate(rate, settings.chat_message_burst, clock) if rate else None
        self._clock = clock
        self._rate_told_at: float | None = None

    def share(self, account: AccountBudget | None) -> None:
        """Also spend from the account's storage quota (None: the account has no quota)."""
        self.account = account

    def room(self) -> int | None:
        """Bytes this chat may still store from client messages (None: unlimited)."""
        rooms = []
        if self.budget is not None:
            rooms.append(self.budget - self.stored)
        if self.account is not None:
            rooms.append(self.account.remaining)
        return max(0, min(rooms)) if rooms else None

    def charge(self, *texts: str | None) -> None:
        """Count an event being stored."""
        self._spend(event_bytes(*texts))

    def charge_recording(self, size: int) -> None:
        """Count the finished recording against the account's budget (the chat's own is for events)."""
        if self.account is not None:
            self.account.remaining -= size

    def _spend(self, size: int) -> None:
        self.stored += size
        if self.account is not None:
            self.account.remaining -= size

    def check(self, message: Any, conversation: Conversation) -> Refusal | None:
        """Why `message` must be refused, or None (`QUIET`: refused, and the client was already told)."""
        if self._rate is not None and not self._rate.take():
            return self._too_fast()
        if (refusal := self.check_custom_session_id(getattr(message, "custom_session_id", None))) is not None:
            return refusal
        match message:
            case p.SessionSettings():
                problem = self._settings_problem(message, conversation)
                if problem is not None:
                    return problem
                cost = self._settings_cost(message, conversation)
            case p.UserInput(text=text) | p.AssistantInput(text=text):
                if (over := self._too_long(text, message.type + ".text")) is not None:
                    return E_LIMIT, over
                cost = text_bytes(text)
            case p.ToolResponse(content=content):
                if (over := self._too_long(content, "tool_response.content")) is not None:
                    return E_LIMIT, over
                cost = text_bytes(content)
            case p.ToolError():
                texts = (message.error, message.content, message.code)
                if sum(text_bytes(t) for t in texts) > self.settings.chat_max_text_bytes:
                    return E_LIMIT, f"tool_error is larger than {self.settings.chat_max_text_bytes} bytes"
                cost = event_bytes(*texts)
            case p.PauseAssistant() | p.ResumeAssistant():
                cost = ROW_BYTES
            case _:
                return None
        room = self.room()
        if room is not None and cost > room:
            return E_STORAGE, (
                f"Storage limit reached: this message needs {cost} bytes and {room} are left "
                f"(the chat has stored {self.stored} bytes)"
            )
        if isinstance(message, p.PauseAssistant | p.ResumeAssistant):
            self._spend(ROW_BYTES)  # its event has no text: `charge` would count nothing
        return None

    def _too_fast(self) -> Refusal:
        now = self._clock()
        if self._rate_told_at is not None and now - self._rate_told_at < RATE_ERROR_EVERY_S:
            return QUIET
        self._rate_told_at = now
        cfg = self.settings
        return E_LIMIT, (
            f"Too many messages: a chat accepts {cfg.chat_max_messages_per_s:g} a second "
            f"(bursts of {cfg.chat_message_burst}); messages over that are dropped"
        )

    def check_custom_session_id(self, custom: str | None) -> Refusal | None:
        """Why a message's custom_session_id must be refused, or None."""
        if custom is not None and text_bytes(custom) > MAX_CUSTOM_SESSION_ID_BYTES:
            return E_LIMIT, f"custom_session_id is longer than {MAX_CUSTOM_SESSION_ID_BYTES} bytes"
        return None

    def _too_long(self, text: str | None, what: str) -> str | None:
        limit = self.settings.chat_max_text_bytes
        if limit and text_bytes(text) > limit:
            return f"{what} is larger than {limit} bytes"
        return None

    def _settings_problem(self, s: p.SessionSettings, conversation: Conversation) -> Refusal | None:
        cfg = self.settings
        fields = s.model_fields_set
        context = s.context.text if "context" in fields and s.context is not None else None
        if cfg.chat_max_context_bytes and text_bytes(context) > cfg.chat_max_context_bytes:
            return E_LIMIT, f"context.text is larger than {cfg.chat_max_context_bytes} bytes"
        variables = dict(conversation.variables)
        if "variables" in fields and s.variables is not None:
            variables.update(s.variables)
            if len(variables) > cfg.chat_max_variables:
                return E_LIMIT, f"A chat may have at most {cfg.chat_max_variables} variables"
            size = sum(text_bytes(k) + text_bytes(_value_text(v)) for k, v in variables.items())
            if size > cfg.chat_max_variables_bytes:
                return E_LIMIT, f"variables are larger than {cfg.chat_max_variables_bytes} bytes in all"
        if "system_prompt" in fields or "variables" in fields:
            prompt = s.system_prompt if "system_prompt" in fields else None
            prompt = prompt or conversation.system_prompt_override or conversation.base_prompt or ""
            if cfg.chat_max_system_prompt_bytes and (
                rendered_prompt_bytes(prompt, variables) > cfg.chat_max_system_prompt_bytes
            ):
                limit = cfg.chat_max_system_prompt_bytes
                return E_LIMIT, f"system_prompt (with its variables filled in) is larger than {limit} bytes"
        if "tools" in fields or "builtin_tools" in fields:
            tools = s.tools or []
            if len(tools) + len(s.builtin_tools or []) > cfg.chat_max_tools:
                return E_LIMIT, f"A chat may have at most {cfg.chat_max_tools} tools"
            size = sum(event_bytes(t.name, t.parameters, t.description, t.fallback_content) for t in tools) + sum(
                event_bytes(b.name, b.fallback_content) for b in s.builtin_tools or []
            )
            if size > cfg.chat_max_tools_bytes:
                return E_LIMIT, f"tools are larger than {cfg.chat_max_tools_bytes} bytes in all"
            for index, tool in enumerate(tools):
                problem = _parameters_problem(tool.parameters)
                if problem is not None:
                    return msg.E_INVALID_MESSAGE, f"Invalid session_settings: tools.{index}.parameters {problem}"
        if "metadata" in fields and s.metadata is not None:
            size = text_bytes(json.dumps(s.metadata))
            if size > cfg.chat_max_text_bytes:
                return E_LIMIT, f"metadata is larger than {cfg.chat_max_text_bytes} bytes"
        return None

    def _settings_cost(self, s: p.SessionSettings, conversation: Conversation) -> int:
        """The bytes applying `s` stores: its SESSION_SETTINGS event and, maybe, a new SYSTEM_PROMPT."""
        shown = s.model_dump_json(exclude_unset=True, exclude={"language_model_api_key"})
        cost = text_bytes(shown)
        fields = s.model_fields_set
        if "system_prompt" in fields or "variables" in fields:
            variables = {**conversation.variables, **(s.variables or {})}
            prompt = s.system_prompt if "system_prompt" in fields else None
            prompt = prompt or conversation.system_prompt_override or conversation.base_prompt
            cost += rendered_prompt_bytes(prompt, variables) if prompt else text_bytes(conversation.system_prompt)
        return cost


def _parameters_problem(parameters: str) -> str | None:
    if not json_depth_ok(parameters):
        return f"nests deeper than {MAX_JSON_DEPTH} levels"
    try:
        schema = json.loads(parameters)
    except (ValueError, RecursionError):
        return "must be a JSON string"
    if not isinstance(schema, dict):
        return "must be a JSON Schema object"
    return None
