"""Traces of a real server exported over OTLP/HTTP to a collector the test runs on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from hume.empathic_voice import UserInput
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.integration.chat_support import client_for, recv_until, scripted_server, wait_chat_ended
from tests.integration.live_support import make_config, wait_until, webhook_bodies
from tests.server import ServerProcess, free_port
from tests.support import http_stub
from tests.support.http_stub import QuietHandler
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.webhook_receiver import Receiver

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object]


class Collector:
    """An OTLP/HTTP trace endpoint (`POST /v1/traces`, protobuf) that keeps every span it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ExportedSpan] = []
        self.service_names: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Collector:
        collector = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with collector._lock:
                    for resource_spans in request.resource_spans:
                        for attribute in resource_spans.resource.attributes:
                            if attribute.key == "service.name":
                                collector.service_names.add(attribute.value.string_value)
                        for scope in resource_spans.scope_spans:
                            collector.spans += [_exported(span) for span in scope.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = http_stub.serve(self.port, Handler)
        return self

    def stop(self) -> None:
        http_stub.stop(self._server)

    def named(self, name: str) -> list[ExportedSpan]:
        with self._lock:
            return [s for s in self.spans if s.name == name]


def _exported(span: object) -> ExportedSpan:
    attributes = {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}  # type: ignore[attr-defined]
    return ExportedSpan(
        name=span.name,  # type: ignore[attr-defined]
        trace_id=span.trace_id.hex(),  # type: ignore[attr-defined]
        span_id=span.span_id.hex(),  # type: ignore[attr-defined]
        parent_id=span.parent_span_id.hex(),  # type: ignore[attr-defined]
        attributes=attributes,
    )


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    running = Collector().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def traced_server(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM, collector: Collector
) -> Iterator[ServerProcess]:
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("traced")),
        llm,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.port}",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="openevi-under-test",
    )
    proc.start(timeout=180)
    yield proc
    proc.stop()


async def test_a_chat_is_one_trace_and_its_requests_carry_it(
    traced_server: ServerProcess, llm: ScriptedLLM, collector: Collector, receiver: Receiver
) -> None:
    llm.script(Reply("Hello from your own model.", when="trace me"))
    llm.clear()
    config_id = await make_config(
        traced_server,
        language_model={"model_provider": "CUSTOM_LANGUAGE_MODEL", "model_resource": llm.completions_url},
        webhooks=[{"url": receiver.url("/traced"), "events": ["chat_started", "chat_ended"]}],
    )
    client = client_for(traced_server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        chat_id = (await socket.recv()).chat_id
        await socket.send_publish(UserInput(text="Please trace me."))
        await recv_until(socket, "assistant_end", limit_s=60)
    await wait_chat_ended(client, chat_id)
    await wait_until(lambda: webhook_bodies(receiver, "chat_ended", chat_id), "the chat_ended webhook")
    async with httpx.AsyncClient(timeout=10) as http:
        caller = {"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01", "X-Hume-Api-Key": traced_server.api_key}
        assert (await http.get(f"{traced_server.base_url}/v0/evi/chats/{chat_id}", headers=caller)).status_code == 200

    def chat_span() -> list[ExportedSpan]:
        return [s for s in collector.named("chat") if s.attributes.get("openevi.chat_id") == chat_id]

    await wait_until(chat_span, "the chat's span", limit_s=30)
    (chat,) = chat_span()
    await wait_until(lambda: len([s for s in collector.spans if s.trace_id == chat.trace_id]) >= 5, "the chat's spans")
    await wait_until(lambda: len(collector.named("webhook_delivery")) >= 2, "the webhook spans", limit_s=30)

    def continued() -> list[ExportedSpan]:
        return [s for s in collector.named("GET /v0/evi/chats/{id}") if s.trace_id == CALLER_TRACE]

    await wait_until(continued, "the REST span in the caller's trace", limit_s=30)
    assert collector.service_names == {"openevi-under-test"}
    assert chat.attributes["openevi.chat_status"] == "USER_ENDED" and chat.parent_id == ""
    in_chat = [s for s in collector.spans if s.trace_id == chat.trace_id]
    (turn,) = [s for s in in_chat if s.name == "turn"]
    assert turn.parent_id == chat.span_id
    assert {"llm_first_token", "tts_first_audio"} <= {s.name for s in in_chat if s.parent_id == turn.span_id}
    (model,) = [s for s in in_chat if s.name == "llm"]
    assert model.parent_id == chat.span_id and model.attributes["openevi.llm.text_deltas"] >= 1
    assert [s.parent_id for s in in_chat if s.name == "tts"] and all(
        s.parent_id == chat.span_id for s in in_chat if s.name == "tts"
    )
    # The custom language model was asked inside the model request's span.
    (asked,) = [r for r in llm.requests if "trace me" in (r.last_user_message or "").lower()]
    assert asked.headers["traceparent"].startswith(f"00-{model.trace_id}-{model.span_id}-")
    # Each webhook delivery is a span, and the receiver was told it.
    deliveries = {s.span_id: s for s in collector.named("webhook_delivery")}
    for event in ("chat_started", "chat_ended"):
        ((received, _),) = webhook_bodies(receiver, event, chat_id)
        _, trace_id, parent_id, _ = received.headers["traceparent"].split("-")
        assert parent_id in deliveries and deliveries[parent_id].trace_id == trace_id
        assert deliveries[parent_id].attributes["openevi.webhook.event"] == event
    # A REST request continues the caller's trace.
    (rest,) = continued()
    assert rest.parent_id == "00f067aa0ba902b7" and rest.attributes["http.response.status_code"] == 200
