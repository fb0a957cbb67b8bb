"""Prometheus metrics of this process (served at `GET /metrics`, docs/operations.md lists them).

A leaf module: the API, the chat engine, the providers and the webhook dispatcher call the small
functions below and never see prometheus_client. Labels take only bounded values (transports,
statuses, stages, error codes, provider kinds, route templates), never chat ids, keys or free text;
the account label stays empty unless `OPENEVI_METRICS_ACCOUNT_LABELS` is set.

With `openevi serve --workers N` every worker writes its samples to files under
`PROMETHEUS_MULTIPROC_DIR` (set by the CLI before the workers start) and `/metrics` on any worker
adds them up, so a scrape sees the whole server whichever worker answers it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Voice latencies: tens of milliseconds (VAD, first token) to several seconds (slow models, long turns).
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TURN_STAGES = ("end_of_turn", "asr", "llm_first_token", "tts_first_audio", "voice_to_voice", "barge_in")

chats_active = Gauge("openevi_chats_active", "Live chats on this server.", ["transport"], multiprocess_mode="livesum")
chats_total = Counter("openevi_chats", "Chats ended, by end status.", ["status", "account"])
turn_stage_seconds = Histogram(
    "openevi_turn_stage_seconds",
    "Time taken by each stage of a conversational turn.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
chat_errors_total = Counter("openevi_chat_errors", "Error messages sent to chat clients, by error code.", ["code"])
provider_requests_total = Counter(
    "openevi_provider_requests", "Requests to speech and language-model providers.", ["kind", "outcome"]
)
provider_request_seconds = Histogram(
    "openevi_provider_requests_seconds",
    "Duration of requests to speech and language-model providers (to the last chunk for streams).",
    ["kind", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
webhook_deliveries_total = Counter(
    "openevi_webhook_deliveries", "Webhook delivery attempts, by outcome (delivered, retry, failed).", ["outcome"]
)
webhook_queue_oldest_seconds = Gauge(
    "openevi_webhook_queue_oldest_seconds",
    "Age of the oldest webhook delivery still pending (0 when none is).",
    multiprocess_mode="livemax",
)
http_requests_total = Counter(
    "openevi_http_requests", "HTTP requests answered, by route template and status class.", ["route", "status"]
)
http_request_seconds = Histogram(
    "openevi_http_requests_seconds",
    "Time to answer HTTP requests, by route template and status class.",
    ["route", "status"],
    buckets=_HTTP_BUCKETS,
)

_account_labels = False


def configure(*, account_labels: bool) -> None:
    """Apply the settings that shape labels (called once by the app)."""
    global _account_labels
    _account_labels = account_labels


def chat_started(transport: str) -> None:
    chats_active.labels(transport).inc()


def chat_ended(transport: str, status: str, account_id: str) -> None:
    chats_active.labels(transport).dec()
    chats_total.labels(status, account_id if _account_labels else "").inc()


def turn_stage(stage: str, seconds: float) -> None:
    turn_stage_seconds.labels(stage).observe(max(0.0, seconds))


def chat_error(code: str) -> None:
    chat_errors_total.labels(code).inc()


def provider_request(kind: str, outcome: str, seconds: float) -> None:
    provider_requests_total.labels(kind, outcome).inc()
    provider_request_seconds.labels(kind, outcome).observe(seconds)


@contextmanager
def timed_provider_request(kind: str) -> Iterator[None]:
    """Count and time the block as one provider request: ok, error, or cancelled (barge-in, chat end)."""
    started = time.monotonic()
    outcome = "cancelled"  # unless it ends or fails: CancelledError, GeneratorExit (the caller stopped listening)
    try:
        yield
        outcome = "ok"
    except Exception:
        outcome = "error"
        raise
    finally:
        provider_request(kind, outcome, time.monotonic() - started)


def webhook_delivery(outcome: str) -> None:
    webhook_deliveries_total.labels(outcome).inc()


def webhook_queue_oldest(seconds: float) -> None:
    webhook_queue_oldest_seconds.set(max(0.0, seconds))


def http_request(route: str, status: int, seconds: float) -> None:
    status_class = f"{status // 100}xx"
    http_requests_total.labels(route, status_class).inc()
    http_request_seconds.labels(route, status_class).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric (of all worker processes in multi-process mode) and its content type."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (its counters and histograms stay in the sums)."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
