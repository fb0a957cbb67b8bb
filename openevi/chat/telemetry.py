"""What a chat sends, seen by metrics and traces: error codes counted, tool calls spanned."""

from __future__ import annotations

from opentelemetry.trace import Span

from openevi import metrics, tracing
from openevi.chat.messages import Error, ServerMessage, ToolCall, ToolError, ToolResponse


class SentMessages:
    """Watches one chat's outbound messages (its Fanout calls `sent` for each)."""

    def __init__(self) -> None:
        self._tool_calls: dict[str, Span] = {}

    def sent(self, message: ServerMessage) -> None:
        if isinstance(message, Error):
            metrics.chat_error(message.code)
        elif isinstance(message, ToolCall):
            call = tracing.tool_call_started(message.name, message.tool_call_id, message.tool_type)
            self._tool_calls[message.tool_call_id] = call
        elif isinstance(message, ToolResponse | ToolError):
            started: Span | None = self._tool_calls.pop(message.tool_call_id, None)
            tracing.tool_call_finished(started, tool_call_id=message.tool_call_id, error=isinstance(message, ToolError))

    def close(self) -> None:
        """The chat is over: calls never answered end with it."""
        for tool_call_id, started in self._tool_calls.items():
            tracing.tool_call_finished(started, tool_call_id=tool_call_id, error=True)
        self._tool_calls.clear()
