"""openevi/tracing.py with the SDK's in-memory exporter: chat, turn and stage spans, requests, propagation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from openevi import tracing
from openevi.app import create_app
from openevi.chat.metered import metered_language_model
from openevi.chat.tasks import TaskScope
from openevi.chat.timings import TurnTimings
from openevi.llm.base import GenerationRequest, LLMEvent, TextDelta
from openevi.settings import Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.mark.parametrize(
    ("env", "configured"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_traces_are_off_unless_the_otel_variables_ask(env: dict[str, str], configured: bool) -> None:
    assert tracing.configured_by_env(env) is configured


def test_unconfigured_tracing_records_and_propagates_nothing() -> None:
    assert tracing.chat_started("c1", transport="websocket", chat_group_id="g1") is None
    with tracing.span("llm"):
        assert tracing.inject({}) == {}


async def test_a_chat_holds_its_turns_and_each_turn_its_stages(spans: InMemorySpanExporter) -> None:
    context = tracing.chat_started("chat-1", transport="websocket", chat_group_id="group-1")
    assert context is not None
    scope = TaskScope("chat-1")
    scope.context = context

    async def model_request() -> None:
        with tracing.span("llm"):
            pass

    await scope.spawn(model_request(), name="turn")  # a task of the chat: its spans are the chat's children
    timings = TurnTimings()
    timings.marks = {"speech_start": 10.0, "speech_end": 12.0, "asr_done": 12.5, "turn_end": 12.8}
    timings.marks |= {"llm_first_token": 13.0, "first_piece": 13.25, "first_audio": 13.5}
    timings.report("chat-1")
    tracing.chat_ended("chat-1", "USER_ENDED")

    (chat,) = named(spans, "chat")
    assert chat.attributes is not None and chat.attributes["openevi.chat_status"] == "USER_ENDED"
    assert chat.attributes["openevi.chat_id"] == "chat-1"
    (turn,) = named(spans, "turn")
    (llm,) = named(spans, "llm")
    assert parent_of(turn) == parent_of(llm) == chat.context.span_id
    assert turn.end_time is not None and turn.start_time is not None
    assert turn.end_time - turn.start_time == pytest.approx(3.5e9, abs=1e3)  # speech start → first audio
    expected = {"end_of_turn": 0.8, "asr": 0.5, "llm_first_token": 0.5, "tts_first_audio": 0.25, "voice_to_voice": 1.5}
    for stage, seconds in expected.items():
        (child,) = named(spans, stage)
        assert parent_of(child) == turn.context.span_id and child.context.trace_id == chat.context.trace_id
        assert child.end_time is not None and child.start_time is not None
        assert child.end_time - child.start_time == pytest.approx(seconds * 1e9, abs=1e3), stage


async def test_a_model_request_reports_its_first_token_and_tokens(spans: InMemorySpanExporter) -> None:
    class Words:
        name = "words"

        async def stream(self, request: GenerationRequest) -> AsyncIterator[LLMEvent]:
            for word in ("It ", "opens ", "at ", "nine."):
                yield TextDelta(word)

        async def aclose(self) -> None:
            return None

    model = metered_language_model(Words())
    said = [e.text async for e in model.stream(GenerationRequest(messages=[])) if isinstance(e, TextDelta)]
    assert said == ["It ", "opens ", "at ", "nine."]
    (llm,) = named(spans, "llm")
    assert llm.attributes is not None and llm.attributes["openevi.llm.text_deltas"] == 4
    assert llm.attributes["openevi.llm.first_token_ms"] >= 0
    assert llm.attributes["openevi.llm.model"] == "words"


def test_a_rest_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    client = TestClient(create_app(Settings()))
    client.get("/healthz", headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    (request,) = named(spans, "GET /healthz")
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200


def test_outbound_requests_carry_the_current_span(spans: InMemorySpanExporter) -> None:
    with tracing.span("webhook_delivery") as current:
        headers = tracing.inject({"Content-Type": "application/json"})
    trace_id, span_id = (
        format(current.get_span_context().trace_id, "032x"),
        format(current.get_span_context().span_id, "016x"),
    )
    assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
