"""`GET /metrics` of a real server after real chats, read with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from hume.empathic_voice import AudioInput, SessionSettings, UserInput
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server, wait_chat_ended
from tests.integration.live_support import make_config
from tests.integration.test_voice import LONG_REPLY, QUESTION, RATE, linear16, silence, speak, stream, voice_server
from tests.server import ServerProcess
from tests.support.scripted_llm import Reply, ScriptedLLM
from tests.webhook_receiver import Receiver

__all__ = ["voice_server"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
STAGES = ("end_of_turn", "asr", "llm_first_token", "tts_first_audio", "voice_to_voice", "barge_in")


async def scrape_text(server: ServerProcess) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server.base_url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(server: ServerProcess) -> Samples:
    return parse(await scrape_text(server))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


async def test_chats_turn_stages_errors_providers_and_webhooks_are_measured(
    voice_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    server = voice_server
    config_id = await make_config(
        server, webhooks=[{"url": receiver.url("/metrics-hooks"), "events": ["chat_started", "chat_ended"]}]
    )
    client = client_for(server)
    before = await scrape(server)
    llm.script(Reply("It opens at nine.", when="museum"))
    llm.script(Reply(LONG_REPLY, chunk_words=3, when="story"))
    audio_settings = SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1})
    chat_ids = []
    # A spoken question, answered: every stage from the end of speech to the first audio.
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        chat_ids.append((await socket.recv()).chat_id)
        live = await scrape(server)
        await socket.send_publish(audio_settings)
        question = np.concatenate([silence(0.3), speak(QUESTION), silence(1.5)])
        sender = asyncio.create_task(stream(socket, linear16(question), chunk_bytes=RATE // 10, seconds_per_chunk=0.05))
        answered = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
        await socket.send_publish(AudioInput(data="not base64!!"))
        await recv_until(socket, "error", limit_s=10)
    assert of_type(answered, "audio_output")
    # A typed request for a long story, cut short by speech: the barge-in stage.
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        chat_ids.append((await socket.recv()).chat_id)
        await socket.send_publish(audio_settings)
        await socket.send_publish(UserInput(text="Tell me a long story."))
        await recv_until(socket, "audio_output", limit_s=30)
        interruption = np.concatenate([speak("Stop, stop, wait a moment please, I have a question"), silence(0.2)])
        sender = asyncio.create_task(
            stream(socket, linear16(interruption), chunk_bytes=RATE // 10, seconds_per_chunk=0.05)
        )
        await recv_until(socket, "user_interruption", limit_s=30)
        await sender
    for chat_id in chat_ids:
        await wait_chat_ended(client, chat_id)
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(f"{server.base_url}/v0/evi/nowhere-{uuid.uuid4().hex}")
    async with asyncio.timeout(30):  # the chats' four webhooks (started, ended) are delivered
        while True:
            after = await scrape(server)
            delivered = total(after, "openevi_webhook_deliveries_total", outcome="delivered")
            if delivered - total(before, "openevi_webhook_deliveries_total", outcome="delivered") >= 4:
                break
            await asyncio.sleep(0.1)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    websocket_chats = {"transport": "websocket"}
    assert total(live, "openevi_chats_active", **websocket_chats) == total(before, "openevi_chats_active") + 1
    assert total(after, "openevi_chats_active", **websocket_chats) == 0
    assert grew("openevi_chats_total", status="USER_ENDED") == 2
    for stage in STAGES:
        assert grew("openevi_turn_stage_seconds_count", stage=stage) >= 1, stage
        assert grew("openevi_turn_stage_seconds_sum", stage=stage) >= 0, stage
    # voice to voice spans the others: at least as long as the end-of-turn wait it contains
    assert grew("openevi_turn_stage_seconds_sum", stage="voice_to_voice") >= grew(
        "openevi_turn_stage_seconds_sum", stage="end_of_turn"
    )
    assert grew("openevi_chat_errors_total", code="E0201") == 1  # invalid_audio
    for kind in ("asr", "tts", "llm", "prosody"):
        assert grew("openevi_provider_requests_total", kind=kind, outcome="ok") >= 1, kind
        assert grew("openevi_provider_requests_seconds_count", kind=kind) == grew(
            "openevi_provider_requests_total", kind=kind
        )
    assert grew("openevi_provider_requests_total", kind="tts", outcome="cancelled") >= 1  # the story was cut off
    assert grew("openevi_webhook_deliveries_total", outcome="delivered") == 4
    assert total(after, "openevi_webhook_queue_oldest_seconds") >= 0
    assert grew("openevi_http_requests_total", route="/v0/evi/chats/{id}", status="2xx") >= 2
    assert grew("openevi_http_requests_total", route="other", status="4xx") == 1
    assert total(after, "openevi_http_requests_seconds_count", route="/v0/evi/configs", status="2xx") >= 1
    # Bounded labels only: no chat id, key, or raw path in any series.
    text = await scrape_text(server)
    for secret in (*chat_ids, server.api_key, "nowhere-", config_id):
        assert secret not in text
    assert all(dict(labels)["account"] == "" for (name, labels) in after if name == "openevi_chats_total")


async def test_every_worker_reports_the_sum_of_all_workers(
    tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM
) -> None:
    # In a thread: on PostgreSQL it makes a database with an event loop of its own.
    proc = await asyncio.to_thread(scripted_server, Path(tmp_path_factory.mktemp("metrics-workers")), llm)
    proc.serve_args = ("--workers", "2")
    proc.start(timeout=180)
    try:
        requests = 30
        async with httpx.AsyncClient(timeout=10) as http:  # the start-up check's request, on one worker
            text = (await http.get(f"{proc.base_url}/metrics")).text
        earlier = total(parse(text), "openevi_http_requests_total", route="/healthz")
        for _ in range(requests):  # a new connection each: the kernel spreads them over both workers
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(f"{proc.base_url}/healthz")).status_code == 200
        seen = set()
        for _ in range(6):  # whichever worker answers the scrape, it counts every worker's requests
            async with httpx.AsyncClient(timeout=10) as http:
                text = (await http.get(f"{proc.base_url}/metrics")).text
            seen.add(total(parse(text), "openevi_http_requests_total", route="/healthz"))
        assert seen == {earlier + requests}
    finally:
        proc.stop()
