"""OpenTelemetry traces, off unless the standard `OTEL_*` variables configure an exporter.

A leaf module like openevi/metrics.py: the engine, the providers, the webhook dispatcher and the API
call the functions below. One span per chat (open while the chat is live), one per user turn with a
child per stage (end of turn, ASR, model, TTS; recorded from the turn's marks when its first audio
is out), one per provider request (ASR, model with its first-token time and token count, TTS,
prosody), per tool call, per webhook delivery and per REST request. Outbound custom-language-model
and webhook requests carry `traceparent`, and REST requests continue the caller's trace.

Without configuration the tracer is the API's no-op one: every call here costs next to nothing.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer

log = logging.getLogger("openevi.tracing")

_tracer: Tracer = NoOpTracer()
_exporting: Any = None  # the SDK TracerProvider configure_from_env made (flushed at shutdown)
_chats: dict[str, Span] = {}
# time.monotonic() marks → the epoch nanoseconds spans are stamped with.
_EPOCH_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def configured_by_env(env: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables ask for traces (an OTLP endpoint, or OTEL_TRACES_EXPORTER)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_from_env() -> None:
    """Export spans as the OTEL_* variables say (OTLP over HTTP, or `console`); nothing when unset."""
    if not configured_by_env(os.environ):
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        if exporter_name != "otlp":
            log.warning("OTEL_TRACES_EXPORTER=%s is not supported; exporting over OTLP/HTTP", exporter_name)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_* variables
    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "openevi"}
    provider = TracerProvider(resource=Resource.create(defaults))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    global _exporting
    _exporting = provider
    use(provider)


def use(provider: Any) -> None:
    """Trace with this SDK TracerProvider (None: stop tracing). Tests give an in-memory one."""
    global _tracer
    _tracer = provider.get_tracer("openevi") if provider is not None else NoOpTracer()


def shutdown() -> None:
    """Send the spans still buffered (the server is stopping)."""
    global _exporting
    if _exporting is not None:
        _exporting.shutdown()
        _exporting = None
        use(None)


# --- chats and turns ---------------------------------------------------------------------------


def chat_started(chat_id: str, *, transport: str, chat_group_id: str) -> contextvars.Context | None:
    """Open the chat's span; returns a context for the chat's tasks (their spans are its children)."""
    if isinstance(_tracer, NoOpTracer):
        return None
    span = _tracer.start_span(
        "chat",
        attributes={"openevi.chat_id": chat_id, "openevi.chat_group_id": chat_group_id, "openevi.transport": transport},
    )
    _chats[chat_id] = span
    tasks = contextvars.copy_context()
    tasks.run(otel_context.attach, trace.set_span_in_context(span))
    return tasks


def chat_ended(chat_id: str, status: str) -> None:
    span = _chats.pop(chat_id, None)
    if span is not None:
        span.set_attribute("openevi.chat_status", status)
        span.end()


def record_turn(chat_id: str, marks: Mapping[str, float], stages: Mapping[str, tuple[float, float]]) -> None:
    """A finished turn: its span (first mark → last) under the chat's, and one child per stage.

    `marks` and `stages` are time.monotonic() seconds."""
    chat = _chats.get(chat_id)
    if chat is None or not marks:
        return
    parent = trace.set_span_in_context(chat)
    turn = _tracer.start_span("turn", context=parent, start_time=_ns(min(marks.values())))
    turn.set_attribute("openevi.turn.from_text", "user_input" in marks)
    inside = trace.set_span_in_context(turn)
    for name, (start, end) in stages.items():
        _tracer.start_span(name, context=inside, start_time=_ns(start)).end(end_time=_ns(max(start, end)))
    turn.end(end_time=_ns(max(marks.values())))


def _ns(monotonic_s: float) -> int:
    return int(monotonic_s * 1e9) + _EPOCH_OFFSET_NS


# --- requests ----------------------------------------------------------------------------------


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: str | int | float | bool) -> Iterator[Span]:
    """A span around the block, current inside it (so outbound requests carry it as `traceparent`)."""
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


@contextmanager
def server_span(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A request's span, continuing the caller's trace when it sent `traceparent`."""
    parent = propagate.extract(headers)
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as current:
        yield current


def failed(current: Span, reason: str) -> None:
    current.set_status(Status(StatusCode.ERROR, reason))


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add `traceparent` (and `tracestate`) of the current span to outbound request headers."""
    propagate.inject(headers)
    return headers


def tool_call_started(name: str, tool_call_id: str, tool_type: str) -> Span:
    """A tool call sent to the client (or run by the server); ended by `tool_call_finished`."""
    return _tracer.start_span(
        "tool_call",
        attributes={"openevi.tool.name": name, "openevi.tool.call_id": tool_call_id, "openevi.tool.type": tool_type},
    )


def tool_call_finished(started: Span | None, *, tool_call_id: str, error: bool) -> None:
    current = started or _tracer.start_span("tool_call", attributes={"openevi.tool.call_id": tool_call_id})
    if error:
        failed(current, "tool_error")
    current.end()
