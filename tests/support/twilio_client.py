"""What Twilio does on a call, written from its public Voice webhook and Media Streams descriptions.

    call = PhoneCall(base_url, "/v0/evi/twilio?config_id=…&api_key=…", auth_token="…")
    answer = call.dial()                     # POST the voice webhook (form body, X-Twilio-Signature)
    async with call.stream(answer) as line:  # <Connect><Stream>: connected, start, then media both ways
        await line.say(samples_8k)           # μ-law 20 ms frames at real-time pace
        ...
        line.heard_audio()                   # what the caller heard (int16 at 8 kHz)

The stream plays outbound audio in real time: a `mark` is echoed once the audio sent before it has
"played", and `clear` drops the unplayed audio and echoes the pending marks at once, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import httpx
import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from openevi.audio import mulaw

RATE = 8000
FRAME = 160  # 20 ms of μ-law


def twilio_signature(auth_token: str, url: str, form: dict[str, str]) -> str:
    """X-Twilio-Signature: HMAC-SHA1(auth token, URL + each POST field's name and value sorted by name), base64."""
    data = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


@dataclass
class TwimlAnswer:
    status: int
    body: str
    stream_url: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)
    hangs_up: bool = False


def parse_twiml(status: int, body: str) -> TwimlAnswer:
    answer = TwimlAnswer(status, body)
    if status != 200:
        return answer
    root = ET.fromstring(body)
    assert root.tag == "Response", body
    for verb in root:
        if verb.tag == "Say":
            answer.said.append(verb.text or "")
        elif verb.tag == "Hangup":
            answer.hangs_up = True
        elif verb.tag == "Connect":
            stream = verb.find("Stream")
            assert stream is not None, body
            answer.stream_url = stream.attrib["url"]
            answer.parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return answer


class MediaStream:
    """The Twilio side of one bidirectional Media Stream."""

    def __init__(self, ws: ClientConnection, stream_sid: str) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.events: list[dict[str, Any]] = []  # everything the server sent, in order
        self.protocol_errors: list[dict[str, Any]] = []  # messages Twilio would reject
        self.media_times: list[float] = []  # perf_counter arrival time of each outbound media frame
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._sequence = 0
        self._chunk = 0
        self._started = time.perf_counter()
        self._heard: list[bytes] = []
        self._play_until = 0.0  # perf_counter time the buffered audio finishes playing
        self._pending_marks: list[tuple[float, str]] = []
        self._reader = asyncio.create_task(self._read())

    async def send(self, event: str, **body: Any) -> None:
        self._sequence += 1
        await self.ws.send(json.dumps({"event": event, "sequenceNumber": str(self._sequence), **body}))

    async def say(self, samples: np.ndarray, *, pace: bool = True) -> None:
        """Send 8 kHz float audio as μ-law 20 ms frames, at real-time pace."""
        data = mulaw.encode((np.clip(samples, -1, 1) * 32767).astype(np.int16))
        clock = time.perf_counter()
        for start in range(0, len(data), FRAME):
            await self.media(data[start : start + FRAME])
            if pace:
                clock += FRAME / RATE
                await asyncio.sleep(max(0.0, clock - time.perf_counter()))

    async def media(self, payload: bytes) -> None:
        self._chunk += 1
        await self.send(
            "media",
            streamSid=self.stream_sid,
            media={
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(int((time.perf_counter() - self._started) * 1000)),
                "payload": base64.b64encode(payload).decode(),
            },
        )

    async def keep_talking_silence(self, until: asyncio.Event | None = None, *, seconds: float = 60.0) -> None:
        """An open line: silence frames until `until` is set (or `seconds` pass, or the stream closes)."""
        frame = np.zeros(FRAME, dtype=np.float32)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and not self.closed.is_set() and not (until and until.is_set()):
            with contextlib.suppress(websockets.ConnectionClosed):
                await self.say(frame)

    async def hang_up(self) -> None:
        """The caller hangs up: `stop`, then the socket closes."""
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.send("stop", streamSid=self.stream_sid, stop={"callSid": "", "accountSid": ""})
        await self.ws.close()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def heard_audio(self) -> np.ndarray:
        """Every outbound media frame decoded to int16, in order."""
        return mulaw.decode(b"".join(self._heard)) if self._heard else np.zeros(0, dtype=np.int16)

    async def wait_for(self, event: str, *, count: int = 1, limit_s: float = 30.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(limit_s):
            while len(self.of(event)) < count:
                if self.closed.is_set():
                    raise AssertionError(f"stream closed before {count} {event!r} events: {self.summary()}")
                await asyncio.sleep(0.01)
        return self.of(event)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.events:
            counts[e.get("event", "?")] = counts.get(e.get("event", "?"), 0) + 1
        return counts

    async def _read(self) -> None:
        marks = asyncio.create_task(self._echo_marks())
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                self.events.append(message)
                known = message.get("event") in ("media", "mark", "clear")
                if message.get("streamSid") != self.stream_sid or not known:
                    self.protocol_errors.append(message)
                now = time.perf_counter()
                if message["event"] == "media":
                    payload = base64.b64decode(message["media"]["payload"])
                    self.media_times.append(now)
                    self._heard.append(payload)
                    self._play_until = max(self._play_until, now) + len(payload) / RATE
                elif message["event"] == "mark":
                    self._pending_marks.append((self._play_until, message["mark"]["name"]))
                elif message["event"] == "clear":
                    self._play_until = now
                    pending, self._pending_marks = self._pending_marks, []
                    for _, name in pending:
                        await self._send_mark(name)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            marks.cancel()

    async def _echo_marks(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            now = time.perf_counter()
            due = [m for m in self._pending_marks if m[0] <= now]
            self._pending_marks = [m for m in self._pending_marks if m[0] > now]
            for _, name in due:
                await self._send_mark(name)

    async def _send_mark(self, name: str) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.send("mark", streamSid=self.stream_sid, mark={"name": name})


@dataclass
class PhoneCall:
    """One call to a number whose voice webhook is `base_url + webhook_path`."""

    base_url: str
    webhook_path: str
    auth_token: str | None = None
    caller: str = "+15005550006"
    callee: str = "+15005550001"
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))

    def form(self) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.caller,
            "To": self.callee,
            "Caller": self.caller,
            "Called": self.callee,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "FromCity": "SAN FRANCISCO",
            "FromState": "CA",
            "FromCountry": "US",
            "FromZip": "94105",
            "ToCountry": "US",
        }

    def dial(self, *, signature: str | None = None, url_for_signing: str | None = None) -> TwimlAnswer:
        """POST the voice webhook as Twilio does; the signature is computed unless given."""
        url = self.base_url + self.webhook_path
        form = self.form()
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        elif self.auth_token is not None:
            headers["X-Twilio-Signature"] = twilio_signature(self.auth_token, url_for_signing or url, form)
        response = httpx.post(url, data=form, headers=headers, timeout=30.0)
        return parse_twiml(response.status_code, response.text)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        answer: TwimlAnswer,
        *,
        parameters: dict[str, str] | None = None,
        media_format: dict[str, Any] | None = None,
        before_start: list[str] = [],  # noqa: B006 - read only
    ) -> AsyncIterator[MediaStream]:
        """Open the `<Stream>` of a TwiML answer: `connected` (and any raw `before_start` frames), then
        `start` with its custom parameters."""
        assert answer.stream_url is not None, answer.body
        assert urlsplit(answer.stream_url).scheme in ("ws", "wss"), answer.stream_url
        stream_sid = "MZ" + secrets.token_hex(16)
        async with websockets.connect(answer.stream_url, open_timeout=30) as ws:
            line = MediaStream(ws, stream_sid)
            await line.send("connected", protocol="Call", version="1.0.0")
            for raw in before_start:
                await ws.send(raw)
            await line.send(
                "start",
                streamSid=stream_sid,
                start={
                    "streamSid": stream_sid,
                    "accountSid": self.account_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": answer.parameters if parameters is None else parameters,
                    "mediaFormat": media_format or {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1},
                },
            )
            try:
                yield line
            finally:
                line._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await line._reader
