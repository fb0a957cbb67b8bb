"""openevi/metrics.py and the HTTP side of it: outcomes, label rules, the switch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from openevi import metrics
from openevi.app import create_app
from openevi.chat.timings import TurnTimings
from openevi.settings import Settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_served_unless_switched_off() -> None:
    on = TestClient(create_app(Settings(metrics=True)))  # no lifespan: /metrics needs none
    off = TestClient(create_app(Settings(metrics=False)))
    response = on.get("/metrics")
    assert response.status_code == 200 and "openevi_chats_active" in response.text
    assert off.get("/metrics").status_code == 404


def test_http_requests_are_labelled_by_route_template_and_status_class() -> None:
    client = TestClient(create_app(Settings()))
    before = sample("openevi_http_requests_total", route="/healthz", status="2xx")
    unmatched = sample("openevi_http_requests_total", route="other", status="4xx")
    client.get("/healthz")
    client.get("/no/such/path/123")
    assert sample("openevi_http_requests_total", route="/healthz", status="2xx") == before + 1
    assert sample("openevi_http_requests_total", route="other", status="4xx") == unmatched + 1
    assert "/no/such/path/123" not in client.get("/metrics").text


@pytest.mark.parametrize("account_labels", [False, True])
def test_account_ids_label_chats_only_when_configured(account_labels: bool) -> None:
    metrics.configure(account_labels=account_labels)
    try:
        metrics.chat_started("websocket")
        metrics.chat_ended("websocket", "USER_ENDED", "acct-123")
    finally:
        metrics.configure(account_labels=False)
    labelled = sample("openevi_chats_total", status="USER_ENDED", account="acct-123")
    assert (labelled > 0) is account_labels


async def test_provider_requests_are_counted_by_outcome() -> None:
    def count(outcome: str) -> float:
        return sample("openevi_provider_requests_total", kind="unit", outcome=outcome)

    ok, error, cancelled = count("ok"), count("error"), count("cancelled")
    with metrics.timed_provider_request("unit"):
        pass
    with pytest.raises(ValueError), metrics.timed_provider_request("unit"):
        raise ValueError("provider failed")

    async def audio() -> AsyncGenerator[bytes, None]:
        with metrics.timed_provider_request("unit"):
            while True:
                yield b"\0\0"

    stream = audio()
    await anext(stream)
    await stream.aclose()  # the listener stopped (a barge-in): cancelled, not failed

    async def slow() -> None:
        with metrics.timed_provider_request("unit"):
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (count("ok"), count("error"), count("cancelled")) == (ok + 1, error + 1, cancelled + 2)


def test_turn_stages_are_measured_between_their_marks() -> None:
    def observed(stage: str) -> tuple[float, float]:
        return (
            sample("openevi_turn_stage_seconds_count", stage=stage),
            sample("openevi_turn_stage_seconds_sum", stage=stage),
        )

    stages = ("end_of_turn", "asr", "llm_first_token", "tts_first_audio", "voice_to_voice")
    before = {stage: observed(stage) for stage in stages}
    timings = TurnTimings()
    timings.marks = {
        "speech_start": 10.0,
        "speech_end": 12.0,
        "asr_done": 12.5,
        "turn_end": 12.8,
        "llm_first_token": 13.0,
        "first_piece": 13.25,
        "first_audio": 13.5,
    }
    timings.report("chat")
    timings.report("chat")  # once per turn
    expected = {"end_of_turn": 0.8, "asr": 0.5, "llm_first_token": 0.5, "tts_first_audio": 0.25, "voice_to_voice": 1.5}
    for stage, seconds in expected.items():
        count, total = observed(stage)
        assert count == before[stage][0] + 1 and total == pytest.approx(before[stage][1] + seconds), stage


def test_a_typed_turn_has_no_voice_stages() -> None:
    before = sample("openevi_turn_stage_seconds_count", stage="voice_to_voice")
    timings = TurnTimings()
    timings.marks = {"user_input": 1.0, "llm_first_token": 1.2, "first_piece": 1.3, "first_audio": 1.4}
    timings.report("chat")
    assert sample("openevi_turn_stage_seconds_count", stage="voice_to_voice") == before
