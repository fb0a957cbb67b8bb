"""The phone transport's pieces: G.711 μ-law, TwiML, Twilio signatures, stream tokens, the audio bridge."""

from __future__ import annotations

import asyncio
import base64
import warnings
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from openevi.audio import mulaw
from openevi.chat.playback import PlaybackClock
from openevi.schemas import messages as msg
from openevi.transports import call_token, twiml
from openevi.transports.twilio import FRAME_BYTES, MediaStreamBridge, OutboundAudio, StreamProtocolError, parse_start
from tests.support.fakes import FakeClock
from tests.support.twilio_client import twilio_signature

# --- μ-law ---------------------------------------------------------------------------------


def test_mulaw_known_code_points() -> None:
    assert mulaw.encode(np.array([0], dtype=np.int16)) == b"\xff"
    assert mulaw.encode(np.array([32767, -32768], dtype=np.int16)) == b"\x80\x00"
    decoded = mulaw.decode(bytes([0x00, 0x80, 0x7F, 0xFF, 0x7E, 0xFE]))
    assert decoded.tolist() == [-32124, 32124, 0, 0, -8, 8]


def test_mulaw_round_trip_keeps_the_signal() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    back = mulaw.decode(mulaw.encode(every)).astype(np.int32)
    error = np.abs(back - every.astype(np.int32))
    # Logarithmic quantisation: the step grows with the magnitude, about 1/16 of it at most.
    assert np.all(error <= np.maximum(8, np.abs(every.astype(np.int32)) // 16 + 132))
    # Decoding then encoding is exact for every one of the 256 codes (0x7F and 0xFF both mean zero).
    codes = bytes(range(256))
    again = mulaw.encode(mulaw.decode(codes))
    assert [a for a, b in zip(again, codes, strict=True) if a != b] == [0xFF]
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    restored = mulaw.decode(mulaw.encode(tone)).astype(np.float64)
    snr = 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum((restored - tone) ** 2))
    assert snr > 30


def test_mulaw_matches_the_reference_codec_bit_for_bit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the C reference, removed from Python 3.13
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert mulaw.encode(every) == audioop.lin2ulaw(every.tobytes(), 2)
    assert mulaw.decode(bytes(range(256))).tobytes() == audioop.ulaw2lin(bytes(range(256)), 2)


# --- TwiML and signatures ----------------------------------------------------------------------


def test_connect_stream_twiml() -> None:
    body = twiml.connect_stream("wss://phone.example.com/v0/evi/twilio/stream", {"token": "a.b", "from": '<"&>'})
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(body)
    assert root.tag == "Response" and [c.tag for c in root] == ["Connect"]
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.attrib["url"] == "wss://phone.example.com/v0/evi/twilio/stream"
    assert {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")} == {
        "token": "a.b",
        "from": '<"&>',
    }


def test_say_and_hang_up_twiml() -> None:
    root = ET.fromstring(twiml.say_and_hang_up("Bad key & config <sorry>"))
    assert [c.tag for c in root] == ["Say", "Hangup"]
    assert root[0].text == "Bad key & config <sorry>"


def test_signature_follows_twilios_recipe() -> None:
    url = "https://phone.example.com/v0/evi/twilio?config_id=c&api_key=k"
    form = {"CallSid": "CA1", "From": "+15550001", "To": "+15550002", "Digits": "1234"}
    expected = twilio_signature("token", url, form)
    assert twiml.signature(token := "token", url, list(form.items())) == expected
    assert twiml.signature_is_valid(token, url, list(form.items()), expected)
    # Twilio may sign with or without the default port.
    with_port = "https://phone.example.com:443/v0/evi/twilio?config_id=c&api_key=k"
    assert twiml.signature_is_valid(token, with_port, list(form.items()), expected)
    assert not twiml.signature_is_valid(token, url, [*form.items(), ("Extra", "1")], expected)
    assert not twiml.signature_is_valid("other", url, list(form.items()), expected)
    assert not twiml.signature_is_valid(token, url.replace("c&", "d&"), list(form.items()), expected)
    assert not twiml.signature_is_valid(token, url, list(form.items()), None)


# --- stream tokens -----------------------------------------------------------------------------


def _grant() -> call_token.CallGrant:
    return call_token.CallGrant(
        account_id="acct",
        key_id="key",
        call_sid="CA1",
        config_id="cfg",
        config_version=2,
        allow_connection=True,
        metadata_digest=call_token.metadata_digest({"from_number": "+1555"}),
    )


def test_stream_token_round_trip_expiry_and_tampering() -> None:
    token = call_token.issue("secret", _grant(), ttl_s=60, now=1000.0)
    assert call_token.verify("secret", token, now=1059.0) == _grant()
    assert call_token.verify("secret", token, now=1061.0) is None
    assert call_token.verify("other", token, now=1000.0) is None
    body, _, mac = token.partition(".")
    assert call_token.verify("secret", body[:-2] + "xx." + mac, now=1000.0) is None
    assert call_token.verify("secret", "garbage", now=1000.0) is None
    assert call_token.metadata_digest({"a": "1", "b": "2"}) == call_token.metadata_digest({"b": "2", "a": "1"})
    assert call_token.metadata_digest({"a": "1"}) != call_token.metadata_digest({"a": "2"})


def test_parse_start() -> None:
    start = parse_start(
        {
            "event": "start",
            "streamSid": "MZ1",
            "start": {
                "streamSid": "MZ1",
                "callSid": "CA1",
                "accountSid": "AC1",
                "customParameters": {"token": "t"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )
    assert (start.stream_sid, start.call_sid, start.sample_rate) == ("MZ1", "CA1", 8000)
    assert start.parameters == {"token": "t"}
    with pytest.raises(StreamProtocolError):
        parse_start({"event": "start", "start": {"streamSid": "MZ1"}})
    with pytest.raises(StreamProtocolError):
        parse_start({"event": "media"})


# --- outbound audio and the bridge -------------------------------------------------------------


def _tone_pcm(seconds: float, rate: int = 24000, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 300 * t) * amplitude * 32767).astype("<i2").tobytes()


def test_outbound_audio_is_20ms_mulaw_frames_at_8khz() -> None:
    audio = OutboundAudio()
    frames = [f for _ in range(4) for f in audio.push_pcm(_tone_pcm(0.25), 24_000)] + audio.flush()
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert abs(len(frames) - 50) <= 1  # 1 s of speech → 50 frames of 20 ms
    decoded = mulaw.decode(b"".join(frames)).astype(np.float64) / 32768
    body = decoded[800:-800]
    assert 0.15 < np.sqrt(np.mean(body**2)) < 0.25  # a 0.3 sine keeps its level (RMS 0.21)
    spectrum = np.abs(np.fft.rfft(body))
    assert abs(np.argmax(spectrum) * 8000 / body.size - 300) < 10  # and its pitch
    audio.push_pcm(_tone_pcm(0.25), 24_000)
    audio.reset()
    assert audio.flush() == []


class _FakeSession:
    chat_id = "chat"

    def __init__(self, clock: FakeClock) -> None:
        self.received: list[bytes] = []
        self.playback = PlaybackClock(lead_s=1.0, clock=clock)

    async def handle_audio(self, pcm: bytes) -> None:
        self.received.append(pcm)

    def unsubscribe(self, queue: object) -> None:
        pass


Line = tuple[
    _FakeSession,
    list[dict[str, Any]],
    "asyncio.Queue[dict[str, Any] | None]",
    "asyncio.Queue[msg.ServerMessage | None]",
    "asyncio.Task[str]",
]


def _bridge(clock: FakeClock) -> Line:
    """A bridge on a fake session: what it sends, its inbound (Twilio) and outbound (chat) queues."""
    session = _FakeSession(clock)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    inbound: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    outbound: asyncio.Queue[msg.ServerMessage | None] = asyncio.Queue()
    bridge = MediaStreamBridge(session, "MZ1", send)  # type: ignore[arg-type]
    return session, sent, inbound, outbound, asyncio.create_task(bridge.run(inbound.get, outbound))


async def test_bridge_speaks_marks_clears_and_hears() -> None:
    session, sent, inbound, outbound, run = _bridge(FakeClock())
    tone = _tone_pcm(0.25)
    for message in (
        msg.AssistantMessage(id="m1", text="One.", from_text=False),
        msg.AudioOutput(id="m1", index=0, pcm=tone, rate=24_000),
        msg.AssistantMessage(id="m2", text="Two.", from_text=False),
        msg.AudioOutput(id="m2", index=0, pcm=tone, rate=24_000),
        msg.UserInterruption(time_ms=5),
        msg.AssistantEnd(),
    ):
        outbound.put_nowait(message)
    payload = base64.b64encode(mulaw.encode(np.full(160, 1000, dtype=np.int16))).decode()
    inbound.put_nowait({"event": "media", "streamSid": "MZ1", "media": {"track": "inbound", "payload": payload}})
    await asyncio.sleep(0.05)
    kinds = [m["event"] for m in sent]
    assert kinds.count("mark") == 1 and sent[kinds.index("mark")]["mark"] == {"name": "m1"}
    assert kinds[-1] == "clear" and all(m["streamSid"] == "MZ1" for m in sent)
    first_mark = kinds.index("mark")
    assert set(kinds[:first_mark]) == {"media"} and first_mark >= 12  # m1's 250 ms, then its mark
    assert len(session.received) == 1
    pcm = np.frombuffer(session.received[0], dtype="<i2")
    assert pcm.size == 160 and abs(int(pcm.mean()) - 1000) < 40
    inbound.put_nowait({"event": "stop", "streamSid": "MZ1"})
    assert await asyncio.wait_for(run, 5) == "caller"


async def test_the_callers_playback_position_comes_from_the_marks_twilio_echoes() -> None:
    clock = FakeClock()
    session, sent, inbound, outbound, run = _bridge(clock)
    await asyncio.sleep(0)
    session.playback.play(0.25, "m1")  # as the engine does when it sends m1's audio
    for message in (
        msg.AssistantMessage(id="m1", text="One.", from_text=False),
        msg.AudioOutput(id="m1", index=0, pcm=_tone_pcm(0.25), rate=24_000),
        msg.AssistantEnd(),
    ):
        outbound.put_nowait(message)
    await asyncio.sleep(0.05)
    assert [m["mark"] for m in sent if m["event"] == "mark"] == [{"name": "m1"}]
    clock.now += 1.0  # by the clock m1 has played, but the line has not said so
    assert session.playback.playing and session.playback.played_s() < 0.25
    inbound.put_nowait({"event": "mark", "streamSid": "MZ1", "mark": {"name": "m1"}})
    await asyncio.sleep(0.05)
    assert not session.playback.playing and session.playback.played_s() == 0.25
    inbound.put_nowait({"event": "stop", "streamSid": "MZ1"})
    assert await asyncio.wait_for(run, 5) == "caller"
