"""Phone calls over Twilio: the voice webhook's TwiML, then a Media Stream that is a normal chat.

A client written from Twilio's public protocol description (tests/support/twilio_client.py) posts
the voice webhook, opens the `<Stream>`, speaks μ-law in real time and listens to what comes back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hume import AsyncHumeClient

from tests.integration.chat_support import client_for, scripted_server
from tests.integration.live_support import (
    WAIT_S,
    history,
    join,
    make_config,
    recv_raw_until,
    rest,
    types_of,
    wait_until,
)
from tests.integration.support import new_account_key
from tests.server import ServerProcess
from tests.support.scripted_llm import CallTool, Reply, ScriptedLLM
from tests.support.speech import have_espeak, speak, word_error_rate
from tests.support.twilio_client import RATE, MediaStream, PhoneCall, twilio_signature
from tests.webhook_receiver import Receiver

AUTH_TOKEN = "twilio-test-auth-token"
CHAT_QUOTA = 2  # live chats per account
QUESTION = "I would like to book a table for two people tonight"
LONG_REPLY = " ".join(
    f"Sentence number {n} of a long and winding answer that goes on for quite a while." for n in range(1, 13)
)


@pytest.fixture(scope="module")
def phone_server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    assert have_espeak(), "espeak-ng is needed (scripts/test installs it)"
    proc = scripted_server(
        Path(tmp_path_factory.mktemp("phone")),
        llm,
        OPENEVI_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        OPENEVI_AUDIO_LEAD_MS="500",  # real-time pacing, so that barge-in has something to stop
        OPENEVI_OUTBOUND_ALLOW="127.0.0.1",
        OPENEVI_ACCOUNT_MAX_CONCURRENT_CHATS=str(CHAT_QUOTA),
    )
    proc.start(timeout=180)
    yield proc
    proc.stop()


def phone(server: ServerProcess, config_id: str | None, *, api_key: str | None = None, **query: str) -> PhoneCall:
    params = {"api_key": api_key or server.api_key, **query}
    if config_id:
        params["config_id"] = config_id
    return PhoneCall(server.base_url, "/v0/evi/twilio?" + str(httpx.QueryParams(params)), auth_token=AUTH_TOKEN)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean((samples.astype(np.float64) / 32768) ** 2))) if samples.size else 0.0


async def hooks_of(receiver: Receiver, call: PhoneCall, event_name: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for request in receiver.received():
            body = json.loads(request.body)
            if body.get("event_name") == event_name and (body.get("twilio_metadata") or {}).get("call_sid") == (
                call.call_sid
            ):
                return body
        return None

    found: dict[str, Any] = await wait_until(find, f"{event_name} webhook of call {call.call_sid}")
    return found


async def control(server: ServerProcess, chat_id: str, message: dict[str, Any]) -> None:
    async with rest(server) as http:
        response = await http.post(f"/v0/evi/chat/{chat_id}/send", json=message)
    assert response.status_code == 200, response.text


async def talk_then_listen(line: MediaStream, audio: np.ndarray, until: asyncio.Event) -> None:
    """Speak, then keep the line open (silence) until `until` is set, as a phone does."""
    await line.say(audio)
    await line.keep_talking_silence(until)


async def test_a_spoken_question_is_answered_over_the_phone(
    phone_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    llm.script(Reply("A table for two is booked.", when="table"))
    hooks = [{"url": receiver.url("/phone"), "events": ["chat_started", "chat_ended"]}]
    config_id = await make_config(phone_server, webhooks=hooks)
    call = phone(phone_server, config_id)
    answer = call.dial()
    assert answer.status == 200 and answer.stream_url is not None, answer.body
    assert answer.stream_url.startswith("ws://127.0.0.1:") and answer.stream_url.endswith("/v0/evi/twilio/stream")
    assert phone_server.api_key not in answer.body  # the key stays out of TwiML
    assert answer.parameters["token"] and answer.parameters["call_sid"] == call.call_sid

    async with call.stream(answer) as line:
        marked = asyncio.Event()
        speech = np.concatenate([silence(0.3), speak(QUESTION, sample_rate=RATE)])
        talker = asyncio.create_task(talk_then_listen(line, speech, marked))
        await line.wait_for("mark", limit_s=60)
        await asyncio.sleep(0.5)  # let the rest of the answer arrive
        marked.set()
        await talker
        await line.hang_up()
        await asyncio.wait_for(line.closed.wait(), WAIT_S)
    assert not line.protocol_errors, line.protocol_errors[:3]
    heard = line.heard_audio()
    assert heard.size >= RATE // 2 and rms(heard) > 0.01, (heard.size, rms(heard))
    assert all(len(e["media"]["payload"]) == 216 for e in line.of("media"))  # 160 μ-law bytes = 20 ms each

    started = await hooks_of(receiver, call, "chat_started")
    assert started["caller_number"] == call.caller
    assert started["twilio_metadata"]["from_number"] == call.caller
    assert started["twilio_metadata"]["to_number"] == call.callee
    assert started["twilio_metadata"]["from_city"] == "SAN FRANCISCO"
    chat, events = await history(client_for(phone_server), started["chat_id"])
    assert chat.status == "USER_ENDED" and chat.config.id == config_id
    users = [e for e in events if e.type == "USER_MESSAGE"]
    assert len(users) == 1 and word_error_rate(QUESTION, users[0].message_text) <= 0.3, users[0].message_text
    assert "Admiration" in json.loads(users[0].emotion_features or "{}")  # scored like any voice chat
    assert [e.message_text for e in events if e.type == "AGENT_MESSAGE"] == ["A table for two is booked."]
    assert line.of("mark")[0]["mark"]["name"]
    ended = await hooks_of(receiver, call, "chat_ended")
    assert ended["chat_id"] == started["chat_id"] and ended["end_reason"] == "USER_ENDED"
    assert ended["caller_number"] == call.caller


async def test_barge_in_clears_what_twilio_has_buffered(
    phone_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver
) -> None:
    llm.script(Reply(LONG_REPLY, chunk_words=3, when="story"))
    config_id = await make_config(phone_server, webhooks=[{"url": receiver.url("/phone"), "events": ["chat_started"]}])
    call = phone(phone_server, config_id)
    async with call.stream(call.dial()) as line:
        done = asyncio.Event()
        line_open = asyncio.create_task(line.keep_talking_silence(done))
        started = await hooks_of(receiver, call, "chat_started")
        # A backend watches the call (phone chats accept observers) and steers it through the control plane.
        async with join(phone_server, started["chat_id"]) as observer:
            await control(phone_server, started["chat_id"], {"type": "user_input", "text": "Tell me a long story."})
            await line.wait_for("media", count=25, limit_s=60)
            done.set()
            await line_open
            before_clear = len(line.of("media"))
            interruption = speak("Stop, stop, wait a moment please, I have a question", sample_rate=RATE)
            stopped = asyncio.Event()
            talker = asyncio.create_task(talk_then_listen(line, interruption, stopped))
            await line.wait_for("clear", limit_s=60)
            stopped.set()
            await talker
            seen = await recv_raw_until(observer, "user_interruption")
        await line.hang_up()
    assert not line.protocol_errors, line.protocol_errors[:3]
    assert before_clear >= 25
    assert any(m["type"] == "user_message" and m["message"]["content"] == "Tell me a long story." for m in seen)
    _, events = await history(client_for(phone_server), started["chat_id"])
    types = types_of(events)
    assert "USER_INTERRUPTION" in types
    assert types.count("AGENT_MESSAGE") < 12, "the story was cut short"


async def test_hang_up_tool_ends_the_call(phone_server: ServerProcess, llm: ScriptedLLM, receiver: Receiver) -> None:
    llm.script(CallTool("hang_up", {}, text="Goodbye, talk soon.", when="bye"))
    config_id = await make_config(
        phone_server,
        builtin_tools=[{"name": "hang_up"}],
        webhooks=[{"url": receiver.url("/phone"), "events": ["chat_started", "chat_ended"]}],
    )
    call = phone(phone_server, config_id)
    async with call.stream(call.dial()) as line:
        line_open = asyncio.create_task(line.keep_talking_silence(seconds=WAIT_S))
        started = await hooks_of(receiver, call, "chat_started")
        await control(phone_server, started["chat_id"], {"type": "user_input", "text": "Thanks, bye!"})
        await asyncio.wait_for(line.closed.wait(), WAIT_S)  # the server ends the stream, so the call
        await line_open
    assert line.close_code == 1000
    assert line.of("media") and line.of("mark")  # the goodbye was spoken before the line closed
    assert rms(line.heard_audio()) > 0.01
    chat, events = await history(client_for(phone_server), started["chat_id"])
    assert chat.status == "USER_ENDED"
    assert [e.message_text for e in events if e.type == "CHAT_END_MESSAGE"] == ["hang_up"]
    ended = await hooks_of(receiver, call, "chat_ended")
    assert ended["end_reason"] == "USER_ENDED"


def test_bad_credentials_and_config_are_said_and_hung_up(phone_server: ServerProcess) -> None:
    bad_key = phone(phone_server, None, api_key="not-a-key").dial()
    assert bad_key.status == 200 and bad_key.hangs_up and bad_key.stream_url is None, bad_key.body
    assert "API key" in bad_key.said[0]
    missing = phone(phone_server, "00000000-0000-0000-0000-000000000000").dial()
    assert missing.status == 200 and missing.hangs_up and "configuration" in missing.said[0], missing.body
    bad_version = phone(phone_server, None, config_version="two").dial()
    assert bad_version.status == 200 and bad_version.hangs_up, bad_version.body


def test_requests_without_twilio_signature_are_refused(phone_server: ServerProcess) -> None:
    call = phone(phone_server, None)
    assert call.dial(signature="bm90IGEgc2lnbmF0dXJl").status == 403
    # Signed for another URL (a different config): refused too.
    other = phone_server.base_url + "/v0/evi/twilio?api_key=x"
    assert call.dial(signature=twilio_signature(AUTH_TOKEN, other, call.form())).status == 403
    no_signature = httpx.post(phone_server.base_url + call.webhook_path, data=call.form(), timeout=30)
    assert no_signature.status_code == 403
    # Behind a TLS proxy, Twilio signs the https URL it called.
    proxied = httpx.post(
        phone_server.base_url + call.webhook_path,
        data=call.form(),
        headers={
            "X-Forwarded-Proto": "https",
            "Host": "phone.example.com",
            "X-Twilio-Signature": twilio_signature(
                AUTH_TOKEN, "https://phone.example.com" + call.webhook_path, call.form()
            ),
        },
        timeout=30,
    )
    assert proxied.status_code == 200 and 'url="wss://phone.example.com/v0/evi/twilio/stream"' in proxied.text


async def test_a_stream_needs_the_token_of_its_call(phone_server: ServerProcess) -> None:
    call = phone(phone_server, None)
    answer = call.dial()
    forged = dict(answer.parameters, token=answer.parameters["token"][:-4] + "AAAA")
    async with call.stream(answer, parameters=forged) as line:
        await asyncio.wait_for(line.closed.wait(), WAIT_S)
    assert line.close_code == 1008 and not line.of("media")
    # Another call's caller details with this call's token: refused.
    spoofed = dict(answer.parameters, from_number="+19999999999")
    async with call.stream(answer, parameters=spoofed) as line:
        await asyncio.wait_for(line.closed.wait(), WAIT_S)
    assert line.close_code == 1008
    # The genuine token works once; a replay is refused.
    async with call.stream(answer) as line:
        await asyncio.sleep(0.5)
        assert not line.closed.is_set()
        await line.hang_up()
    async with call.stream(answer) as line:
        await asyncio.wait_for(line.closed.wait(), WAIT_S)
    assert line.close_code == 1008


async def test_hostile_stream_frames_neither_crash_the_call_nor_burn_its_token(phone_server: ServerProcess) -> None:
    """A start refused for its audio format used to use up the call's token (Twilio's retry was then
    refused); JSON nested 100k deep raised before authentication; `"media": "x"` dropped the call."""
    call = phone(phone_server, None)
    answer = call.dial()
    wrong = {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
    async with call.stream(answer, media_format=wrong) as line:
        await asyncio.wait_for(line.closed.wait(), WAIT_S)
    assert line.close_code == 1003
    async with call.stream(answer, before_start=["[" * 100_000]) as line:
        await line.send("media", streamSid=line.stream_sid, media="x")
        await line.send("mark", streamSid=line.stream_sid, mark="x")
        await asyncio.sleep(0.5)
        assert not line.closed.is_set()
        await line.hang_up()


async def test_calls_count_against_the_accounts_chat_quota(phone_server: ServerProcess) -> None:
    key = new_account_key(phone_server, "phone-quota")
    client = AsyncHumeClient(api_key=key, base_url=phone_server.base_url)
    async with AsyncExitStack() as stack:
        for _ in range(CHAT_QUOTA):
            socket = await stack.enter_async_context(client.empathic_voice.chat.connect())
            await socket.recv()
        busy = await asyncio.to_thread(phone(phone_server, None, api_key=key).dial)
    assert busy.status == 200 and busy.hangs_up and "limit" in busy.said[0], busy.body

    async def admitted() -> bool:  # the chats end just after their sockets close
        answer = await asyncio.to_thread(phone(phone_server, None, api_key=key).dial)
        return answer.stream_url is not None

    for _ in range(int(WAIT_S / 0.2)):
        if await admitted():
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("calls stayed refused after the chats ended")
