"""Hume's own client code paths against openevi: the Python SDK's microphone (binary PCM frames),
binary container audio as voice-react sends it, voice turns with tools, loose connect settings,
`event_limit` and the legacy `/v0/assistant/chat` path."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
import websockets
from hume.empathic_voice import SessionSettings, UserInput

from tests.integration.chat_support import client_for, of_type, recv_until, scripted_server, wait_chat_ended
from tests.integration.live_support import history, make_config, make_tool, recv_raw_until, types_of, wait_until
from tests.server import ServerProcess
from tests.support.scripted_llm import CallTool, RecordedRequest, Reply, ScriptedLLM
from tests.support.sound_card import FakeSoundCard
from tests.support.speech import encode, speak, to_linear16

RATE = 16_000
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(rate * seconds), dtype=np.float32)


def has_tool_result(request: RecordedRequest) -> bool:
    return any(m.get("role") == "tool" for m in request.messages)


def asks(*words: str, tool_result: bool | None = None) -> Any:
    """A scripted-model matcher: the last user message has all `words` (and a tool result or not)."""

    def match(request: RecordedRequest) -> bool:
        last = (request.last_user_message or "").lower()
        if not all(w in last for w in words):
            return False
        return tool_result is None or has_tool_result(request) == tool_result

    return match


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[ServerProcess]:
    proc = scripted_server(Path(tmp_path_factory.mktemp("hume-clients")), llm, OPENEVI_AUDIO_LEAD_MS="500")
    proc.start(timeout=180)
    yield proc
    proc.stop()


async def send_binary(socket: Any, data: bytes, *, chunk_bytes: int, seconds_per_chunk: float) -> None:
    """Binary frames through the SDK's own `_send` (what its MicrophoneSender calls)."""
    for start in range(0, len(data), chunk_bytes):
        await socket._send(data[start : start + chunk_bytes])
        await asyncio.sleep(seconds_per_chunk)


async def _until(check: Any) -> None:
    while not check():  # noqa: ASYNC110 - the condition is set by a sound-card thread
        await asyncio.sleep(0.05)


def finals(messages: list[Any]) -> list[Any]:
    return [m for m in of_type(messages, "user_message") if not m.interim]


async def test_the_sdks_microphone_interface_holds_a_voice_chat(server: ServerProcess, llm: ScriptedLLM) -> None:
    """MicrophoneInterface as Hume's Python quickstart uses it: session_settings with the sound card's
    format, then raw 48 kHz PCM as binary frames; audio_output goes to its player."""
    llm.script(Reply("The museum opens at nine.", when="museum"))
    card_rate = 48_000
    mic = to_linear16(
        np.concatenate([silence(0.3, card_rate), speak("When does the museum open", sample_rate=card_rate)])
    )
    card = FakeSoundCard(mic, sample_rate=card_rate)
    client = client_for(server)
    with card.installed():
        interface = sys.modules["hume.empathic_voice.chat.audio.microphone_interface"].MicrophoneInterface
        stream = sys.modules["hume.empathic_voice.chat.audio.asyncio_utilities"].Stream.new()
        async with client.empathic_voice.chat.connect() as socket:
            metadata = await socket.recv()
            microphone = asyncio.create_task(interface.start(socket, byte_stream=stream, allow_user_interrupt=False))
            messages: list[Any] = []
            try:
                async with asyncio.timeout(90):
                    while not of_type(messages, "assistant_end"):
                        message = await socket.recv()
                        messages.append(message)
                        if message.type == "audio_output":  # as the quickstart does
                            await stream.put(base64.b64decode(message.data.encode()))
                    await _until(lambda: any(card.played))  # the SDK's player reached the speaker
            finally:
                microphone.cancel()
                await asyncio.gather(microphone, return_exceptions=True)
    assert not of_type(messages, "error"), of_type(messages, "error")
    echoed = of_type(messages, "session_settings")
    assert echoed and echoed[0].audio.sample_rate == card_rate and echoed[0].audio.encoding == "linear16"
    heard = finals(messages)
    assert len(heard) == 1 and "museum" in heard[0].message.content.lower(), heard
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["The museum opens at nine."]
    _, events = await history(client, metadata.chat_id)
    assert types_of(events).count("USER_MESSAGE") == 1


def without_trailing_quiet(audio: np.ndarray) -> np.ndarray:
    """Speech cut right after its last audible sample: no silence for the turn to end on."""
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[: loud[-1] + 1] if loud.size else audio


def quiet_wav(seconds: float, rate: int) -> bytes:
    """A WAV of quiet audio, standing in for the assistant's speech on the SDK's player."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(rate * seconds))
    return out.getvalue()


async def test_a_client_that_stops_sending_after_speech_is_answered(server: ServerProcess, llm: ScriptedLLM) -> None:
    """Push-to-talk and muting clients stop sending when the user stops: no frames is silence."""
    llm.script(Reply("The library closes at six.", when="library"))
    speech = to_linear16(np.concatenate([silence(0.3), without_trailing_quiet(speak("When does the library close"))]))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        await send_binary(socket, speech, chunk_bytes=640, seconds_per_chunk=0.02)  # a microphone's pace
        # ...and then nothing more: the turn must end on the clock.
        messages = await recv_until(socket, "assistant_end", limit_s=60)
    heard = finals(messages)
    assert len(heard) == 1 and "library" in heard[0].message.content.lower(), heard
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["The library closes at six."]


async def test_the_sdks_microphone_muted_during_playback_still_ends_the_turn(
    server: ServerProcess, llm: ScriptedLLM
) -> None:
    """allow_user_interrupt=False: the SDK stops sending the microphone while its player plays. The
    user's words end right as playback starts; the turn must end without more audio."""
    llm.script(Reply("The gallery opens at noon.", when="gallery"))
    card_rate = 48_000
    speech = without_trailing_quiet(speak("When does the gallery open", sample_rate=card_rate))
    mic = to_linear16(np.concatenate([silence(0.3, card_rate), speech]))
    card = FakeSoundCard(mic, sample_rate=card_rate)
    client = client_for(server)
    muted_at: list[int] = []  # bytes the microphone had sent when playback began
    sent = [0]
    with card.installed():
        interface = sys.modules["hume.empathic_voice.chat.audio.microphone_interface"].MicrophoneInterface
        stream = sys.modules["hume.empathic_voice.chat.audio.asyncio_utilities"].Stream.new()
        async with client.empathic_voice.chat.connect() as socket:
            await socket.recv()
            send = socket._send

            async def counted(data: Any) -> None:
                if isinstance(data, bytes):
                    sent[0] += len(data)
                await send(data)

            socket._send = counted
            microphone = asyncio.create_task(interface.start(socket, byte_stream=stream, allow_user_interrupt=False))
            try:
                await _until(lambda: card.mic_sent >= len(mic))
                await stream.put(quiet_wav(30, card_rate))  # playback begins: the SDK mutes the mic
                muted_at.append(sent[0])
                messages = await recv_until(socket, "assistant_end", limit_s=60)
                after_mute = sent[0] - muted_at[0]
            finally:
                microphone.cancel()
                await asyncio.gather(microphone, return_exceptions=True)
    heard = finals(messages)
    assert len(heard) == 1 and "gallery" in heard[0].message.content.lower(), heard
    # Less than the end-of-turn silence (800 ms) reached the server once the player started.
    assert after_mute < card_rate * 2 * 0.8, after_mute
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["The gallery opens at noon."]


async def test_binary_pcm_json_audio_and_text_mix_in_one_chat(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Two tickets booked.", when="tickets"), Reply("Noted.", when="typed"))
    client = client_for(server)
    # Trailing silence past OPENEVI_TURN_MAX_SILENCE_MS: the turn ends whatever the model makes of espeak.
    speech = to_linear16(np.concatenate([speak("I would like two tickets"), silence(2.5)]))
    half = len(speech) // 2 // 2 * 2
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        # The first half as JSON audio_input, the rest as binary frames.
        for start in range(0, half, 1600):
            chunk = base64.b64encode(speech[start : min(start + 1600, half)]).decode()
            await socket._send({"type": "audio_input", "data": chunk})
            await asyncio.sleep(0.05)
        sender = asyncio.create_task(send_binary(socket, speech[half:], chunk_bytes=1600, seconds_per_chunk=0.05))
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
        await socket.send_publish(UserInput(text="A typed message"))
        messages += await recv_until(socket, "assistant_end", limit_s=30)
    heard = finals(messages)
    assert "ticket" in heard[0].message.content.lower(), heard
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Two tickets booked.", "Noted."]


async def test_binary_webm_opus_without_audio_settings(server: ServerProcess, llm: ScriptedLLM) -> None:
    """voice-react's path: MediaRecorder webm/opus chunks as binary frames, no session_settings.audio."""
    llm.script(Reply("It opens at ten.", when="library"))
    webm = encode(np.concatenate([speak("When does the library open"), silence(1.5)]), fmt="webm", codec="libopus")
    assert webm[:4] == b"\x1a\x45\xdf\xa3"  # the EBML magic starts the first frame
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        sender = asyncio.create_task(send_binary(socket, webm, chunk_bytes=len(webm) // 30 + 1, seconds_per_chunk=0.1))
        messages = await recv_until(socket, "assistant_end", limit_s=60)
        await sender
    assert not of_type(messages, "error")
    assert "library" in finals(messages)[0].message.content.lower()


async def test_garbage_binary_gets_invalid_audio_and_the_chat_goes_on(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Still here.", when="there"))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket._send(b"\x01\x02 definitely not audio " * 40)
        errors = await recv_until(socket, "error", limit_s=10)
        assert errors[-1].slug == "invalid_audio"
        await socket.send_publish(UserInput(text="Are you there?"))
        messages = await recv_until(socket, "assistant_end", limit_s=30)
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["Still here."]


async def test_a_spoken_turn_with_a_tool_is_in_order(server: ServerProcess, llm: ScriptedLLM) -> None:
    """user_message before tool_call, the words in the model's context before its first request,
    stored USER_MESSAGE → FUNCTION_CALL → FUNCTION_CALL_RESPONSE → AGENT_MESSAGE, one tool round."""
    client = client_for(server)
    tool = await make_tool(client, "get_weather", WEATHER, description="Weather for a city")
    config_id = await make_config(server, tools=[tool])
    llm.script(
        CallTool("get_weather", {"city": "Paris"}, when=asks("weather", tool_result=False)),
        Reply("It is sunny in Paris.", when=asks("weather", tool_result=True)),
    )
    before = len(llm.requests)
    speech = to_linear16(np.concatenate([speak("What is the weather in Paris"), silence(1.5)]))
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        sender = asyncio.create_task(send_binary(socket, speech, chunk_bytes=1600, seconds_per_chunk=0.05))
        messages = await recv_until(socket, "tool_call", limit_s=60)
        await sender
        call = messages[-1]
        await socket._send({"type": "tool_response", "tool_call_id": call.tool_call_id, "content": "sunny, 24 C"})
        messages += await recv_until(socket, "assistant_end", limit_s=30)
    kinds = [m.type for m in messages if m.type in ("user_message", "tool_call", "assistant_message")]
    heard = finals(messages)
    assert len(heard) == 1 and "weather" in heard[0].message.content.lower()
    assert kinds.index("user_message") < kinds.index("tool_call") < kinds.index("assistant_message")
    assert len(of_type(messages, "tool_call")) == 1
    assert [m.message.content for m in of_type(messages, "assistant_message")] == ["It is sunny in Paris."]
    requests = llm.requests[before:]
    first_call = next(
        r for r in requests if not has_tool_result(r) and "weather" in (r.last_user_message or "").lower()
    )
    roles = [m.get("role") for m in first_call.messages]
    assert roles[-1] == "user"
    answered = [r for r in requests if has_tool_result(r)]
    assert answered, "the tool result went back to the model"
    roles = [m.get("role") for m in answered[-1].messages]
    assert roles[-3:] == ["user", "assistant", "tool"], roles  # words, then the call, then its result
    _, events = await history(client, metadata.chat_id)
    turn = ["USER_MESSAGE", "FUNCTION_CALL", "FUNCTION_CALL_RESPONSE", "AGENT_MESSAGE"]
    assert [t for t in types_of(events) if t in turn] == turn


async def test_a_speculative_answer_runs_no_tool_before_the_turn_is_confirmed(
    server: ServerProcess, llm: ScriptedLLM
) -> None:
    """ "Please hang up … no wait, tell me a joke": the model asks for hang_up on the words before the
    pause (a speculative answer), but the user goes on, so hang_up must never run."""
    config_id = await make_config(
        server,
        builtin_tools=[{"name": "hang_up"}],
        turn_detection={"end_of_turn_silence_ms": 2500},
    )
    llm.script(
        CallTool("hang_up", {}, when=lambda r: asks("hang")(r) and not asks("joke")(r)),
        Reply("Why did the chicken cross the road?", when="joke"),
    )
    before = len(llm.requests)
    first_words = to_linear16(np.concatenate([speak("Please hang up the call"), silence(1.4)]))
    then = to_linear16(np.concatenate([speak("no wait, tell me a joke"), silence(3.0)]))

    def speculative() -> list[RecordedRequest]:
        return [r for r in llm.requests[before:] if asks("hang")(r) and not asks("joke")(r)]

    client = client_for(server)
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        metadata = await socket.recv()
        await socket.send_publish(SessionSettings(audio={"encoding": "linear16", "sample_rate": RATE, "channels": 1}))
        await send_binary(socket, first_words, chunk_bytes=1600, seconds_per_chunk=0.05)
        # The turn stays open (1.4 s of silence is under the 2.5 s end of turn, counted in audio), but
        # whether the words are transcribed before the user goes on depends on the machine's speed:
        # the user goes on once the speculative answer has started, so the case under test always happens.
        await wait_until(speculative, "a speculative answer to the words before the pause")
        sender = asyncio.create_task(send_binary(socket, then, chunk_bytes=1600, seconds_per_chunk=0.05))
        messages = await recv_until(socket, "assistant_end", limit_s=90)
        await sender
        await socket.send_publish(UserInput(text="Still there?"))
        messages += await recv_until(socket, "assistant_end", limit_s=30)
    assert speculative(), "the words before the pause started a speculative answer (the case under test)"
    assert not of_type(messages, "tool_call") and not of_type(messages, "tool_response")
    heard = finals(messages)
    assert "joke" in heard[0].message.content.lower()
    said = [m.message.content for m in of_type(messages, "assistant_message")]
    assert said[0] == "Why did the chicken cross the road?"
    _, events = await history(client, metadata.chat_id)  # events are stored off the hot path: all of them
    assert "FUNCTION_CALL" not in types_of(events)


async def test_a_tool_loop_still_ends_with_an_answer(server: ServerProcess, llm: ScriptedLLM) -> None:
    client = client_for(server)
    tool = await make_tool(client, "lookup", {"type": "object", "properties": {}})
    config_id = await make_config(server, tools=[tool])
    llm.script(
        Reply("I could not find it, sorry.", when=lambda r: "find" in (r.last_user_message or "") and not r.tool_names),
        CallTool("lookup", {}, when="find"),
    )
    async with client.empathic_voice.chat.connect(config_id=config_id) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="Please find my keys"))
        messages: list[Any] = []
        async with asyncio.timeout(60):
            while not of_type(messages, "assistant_end"):
                message = await socket.recv()
                messages.append(message)
                if message.type == "tool_call":
                    await socket._send({"type": "tool_response", "tool_call_id": message.tool_call_id, "content": "?"})
    assert len(of_type(messages, "tool_call")) == 8
    said = " ".join(m.message.content for m in of_type(messages, "assistant_message"))
    assert said == "I could not find it, sorry."


async def test_assistant_prosody_comes_before_assistant_end(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("First sentence here. And the second one.", when="two"))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="Say two sentences"))
        messages = await recv_until(socket, "assistant_end", limit_s=30)
    spoken = {m.id for m in of_type(messages, "assistant_message")}
    measured = {m.id for m in of_type(messages, "assistant_prosody")}
    assert len(spoken) == 2 and measured == spoken


def _raw_url(server: ServerProcess, path: str, **query: str) -> str:
    return server.base_url.replace("http", "ws", 1) + path + "?" + urlencode({"api_key": server.api_key, **query})


async def test_legacy_path_loose_variables_and_event_limit(server: ServerProcess, llm: ScriptedLLM) -> None:
    """Hume's raw-API example connects to /v0/assistant/chat; the phone proxy passes variables as a JSON
    string; test suites send event_limit and read it back from the stored SESSION_SETTINGS event."""
    llm.script(Reply("Hello Ada.", when="hello"))
    client = client_for(server)
    query = {
        "session_settings[variables]": json.dumps({"name": "Ada", "plan": "pro"}),
        "session_settings[event_limit]": "5",
    }
    async with websockets.connect(_raw_url(server, "/v0/assistant/chat", **query)) as ws:
        metadata = json.loads(await ws.recv())
        assert metadata["type"] == "chat_metadata"
        await ws.send(json.dumps({"type": "user_input", "text": "hello there"}))
        messages = await recv_raw_until(ws, "assistant_end")
    echoed = [m for m in messages if m["type"] == "session_settings"]
    assert echoed and echoed[0]["variables"] == {"name": "Ada", "plan": "pro"} and echoed[0]["event_limit"] == 5
    assert [m["message"]["content"] for m in messages if m["type"] == "assistant_message"] == ["Hello Ada."]
    _, events = await history(client, metadata["chat_id"])
    stored = [json.loads(e.message_text) for e in events if e.type == "SESSION_SETTINGS"]
    assert stored and stored[0]["event_limit"] == 5 and stored[0]["variables"]["name"] == "Ada"


async def test_event_limit_bounds_the_resumed_context(server: ServerProcess, llm: ScriptedLLM) -> None:
    llm.script(Reply("Sure.", when="fact"), Reply("Resumed.", when="again"))
    client = client_for(server)
    async with client.empathic_voice.chat.connect() as socket:
        metadata = await socket.recv()
        for n in range(4):
            await socket.send_publish(UserInput(text=f"Remember fact number {n}"))
            await recv_until(socket, "assistant_end", limit_s=30)
    await wait_chat_ended(client, metadata.chat_id)
    before = len(llm.requests)
    async with client.empathic_voice.chat.connect(
        resumed_chat_group_id=metadata.chat_group_id, session_settings={"event_limit": 2}
    ) as socket:
        await socket.recv()
        await socket.send_publish(UserInput(text="Hello again"))
        await recv_until(socket, "assistant_end", limit_s=30)
    sent = [m.get("content") for m in llm.requests[before:][-1].messages if m.get("role") in ("user", "assistant")]
    # Only the two most recent stored events (the last question and its answer) came back.
    assert sent[:2] == ["Remember fact number 3", "Sure."], sent
    assert not any("number 2" in str(c) for c in sent)
