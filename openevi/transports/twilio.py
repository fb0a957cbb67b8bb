"""A phone call as a chat: Twilio Media Streams (μ-law 8 kHz) ↔ a ChatSession.

Inbound `media` frames are decoded to linear16 and fed to the session like `audio_input`. The
session's outbound stream (the messages an EVI socket would get) is turned back into speech:
each `audio_output` WAV piece is resampled to 8 kHz and sent as 20 ms μ-law `media` frames, a
`mark` follows each assistant message's audio (its echo tells the engine the caller heard it), and a
`user_interruption` becomes `clear` (Twilio drops what it has buffered). When the chat ends the
bridge lets the last words play, then closes the stream, which ends the `<Connect>` and so the call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr

from openevi.audio import mulaw
from openevi.schemas import messages as msg

if TYPE_CHECKING:
    from openevi.chat.session import ChatSession

log = logging.getLogger("openevi.transports.twilio")

PHONE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = PHONE_RATE * FRAME_MS // 1000  # one μ-law byte per sample
MULAW = "audio/x-mulaw"
# After the chat ends, the caller hears what is still buffered; this bounds the wait past its end.
PLAYOUT_GRACE_S = 1.0
PLAYOUT_LIMIT_S = 30.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any] | None]]


class StreamProtocolError(Exception):
    """The socket did not speak Twilio Media Streams as expected."""


@dataclass(frozen=True)
class StreamStart:
    """The `start` message: which call this stream carries, and how its audio is encoded."""

    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str]
    encoding: str
    sample_rate: int
    channels: int


def parse_start(message: dict[str, Any]) -> StreamStart:
    start = message.get("start")
    if message.get("event") != "start" or not isinstance(start, dict):
        raise StreamProtocolError(f"expected a start message, got {message.get('event')!r}")
    media_format = start.get("mediaFormat") or {}
    parameters = start.get("customParameters") or {}
    try:
        return StreamStart(
            stream_sid=str(message.get("streamSid") or start["streamSid"]),
            call_sid=str(start["callSid"]),
            account_sid=str(start.get("accountSid") or ""),
            parameters={str(k): str(v) for k, v in parameters.items()},
            encoding=str(media_format.get("encoding", MULAW)),
            sample_rate=int(media_format.get("sampleRate", PHONE_RATE)),
            channels=int(media_format.get("channels", 1)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StreamProtocolError(f"malformed start message: {exc}") from exc


async def wait_for_start(receive: Receive) -> StreamStart:
    """Skip `connected` (and anything before `start`), then parse `start`."""
    while True:
        message = await receive()
        if message is None:
            raise StreamProtocolError("the stream closed before start")
        if message.get("event") == "start":
            return parse_start(message)
        if message.get("event") == "stop":
            raise StreamProtocolError("the stream stopped before start")


class OutboundAudio:
    """audio_output pieces (PCM at the speech rate) → 20 ms μ-law frames at 8 kHz, streaming."""

    def __init__(self) -> None:
        self._resampler: soxr.ResampleStream | None = None
        self._rate = 0
        self._pending = b""

    def push_pcm(self, pcm_bytes: bytes, rate: int) -> list[bytes]:
        """One piece of 16-bit mono PCM at `rate` (as the engine emits it)."""
        pcm = np.frombuffer(pcm_bytes, dtype="<i2")
        if self._resampler is None or rate != self._rate:
            self._pending += self._drain()
            self._resampler = None if rate == PHONE_RATE else soxr.ResampleStream(rate, PHONE_RATE, 1, dtype="int16")
            self._rate = rate
        out = pcm if self._resampler is None else self._resampler.resample_chunk(pcm)
        return self._frames(mulaw.encode(out))

    def flush(self) -> list[bytes]:
        """End of a message: what the resampler holds back, and the last frame padded with silence."""
        tail = self._pending + self._drain()
        self._resampler, self._rate, self._pending = None, 0, b""
        if tail and len(tail) % FRAME_BYTES:
            tail += bytes([mulaw.SILENCE]) * (FRAME_BYTES - len(tail) % FRAME_BYTES)
        return [tail[i : i + FRAME_BYTES] for i in range(0, len(tail), FRAME_BYTES)]

    def reset(self) -> None:
        """Barge-in: forget everything not yet sent."""
        self._resampler, self._rate, self._pending = None, 0, b""

    def _drain(self) -> bytes:
        if self._resampler is None:
            return b""
        return mulaw.encode(self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True))

    def _frames(self, encoded: bytes) -> list[bytes]:
        data = self._pending + encoded
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        return [data[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]


class MediaStreamBridge:
    """Runs one call: moves audio both ways between a Media Stream and a chat session."""

    def __init__(self, session: ChatSession, stream_sid: str, send: Send) -> None:
        self.session = session
        self.stream_sid = stream_sid
        self._send = send
        self._audio = OutboundAudio()
        self._message_id: str | None = None
        self._playing_until = 0.0  # monotonic time the caller will have heard everything sent
        self._unplayed_marks: set[str] = set()
        self._marks_played = asyncio.Event()

    async def run(self, receive: Receive, outbound: asyncio.Queue[msg.ServerMessage | None]) -> str:
        """Until the caller hangs up ("caller") or the chat ends ("chat")."""
        # Twilio echoes each message's mark once the caller has heard its audio: the engine then
        # knows what was heard (barge-in keeps only that) from the line, not from a guess.
        self.session.playback.confirm_by_transport()
        writer = asyncio.create_task(self._write(outbound), name=f"twilio-out-{self.session.chat_id}")
        reader = asyncio.create_task(self._read(receive), name=f"twilio-in-{self.session.chat_id}")
        try:
            done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            return "chat" if writer in done else "caller"
        finally:
            self.session.unsubscribe(outbound)
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    # --- caller → chat -------------------------------------------------------------------

    async def _read(self, receive: Receive) -> None:
        while (message := await receive()) is not None:
            event = message.get("event")
            if event == "media":
                await self._inbound_media(message)
            elif event == "mark":
                mark = message.get("mark")
                if isinstance(mark, dict):
                    self._mark_played(str(mark.get("name", "")))
            elif event == "stop":
                return

    async def _inbound_media(self, message: dict[str, Any]) -> None:
        media = message.get("media")
        if not isinstance(media, dict):  # `"media": "x"` used to end the call without a word
            log.debug("call %s: a media message without a media object", self.stream_sid)
            return
        if media.get("track") not in (None, "inbound"):
            return
        try:
            payload = base64.b64decode(str(media.get("payload", "")), validate=True)
        except (binascii.Error, ValueError):
            return  # one bad frame is a click on the line, not a reason to end the call
        if payload:
            pcm = mulaw.decode(payload).astype("<i2").tobytes()
            await self.session.handle_audio(pcm)

    def _mark_played(self, name: str) -> None:
        self.session.playback.confirm(name)  # a mark Twilio echoes after a clear names a cleared message: ignored
        self._unplayed_marks.discard(name)
        if not self._unplayed_marks:
            self._marks_played.set()

    # --- chat → caller -------------------------------------------------------------------

    async def _write(self, outbound: asyncio.Queue[msg.ServerMessage | None]) -> None:
        while (message := await outbound.get()) is not None:
            match message:
                case msg.AudioOutput():
                    if message.id != self._message_id:
                        await self._end_message()
                        self._message_id = message.id
                    try:
                        frames = self._audio.push_pcm(message.pcm, message.rate)
                    except ValueError:  # not whole 16-bit samples: a provider's bug, not the call's end
                        log.warning("chat %s: unreadable audio_output skipped", self.session.chat_id)
                        continue
                    await self._send_frames(frames)
                case msg.AssistantEnd():
                    await self._end_message()
                case msg.AssistantMessage() if message.id != self._message_id:
                    await self._end_message()
                case msg.UserInterruption():
                    await self._clear()
        await self._end_message()
        await self._let_it_play()

    async def _send_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            now = time.monotonic()
            self._playing_until = max(self._playing_until, now) + FRAME_MS / 1000
            await self._send(
                {"event": "media", "streamSid": self.stream_sid, "media": {"payload": base64.b64encode(frame).decode()}}
            )

    async def _end_message(self) -> None:
        """The current assistant message's audio is complete: send its tail and a mark."""
        if self._message_id is None:
            return
        name, self._message_id = self._message_id, None
        await self._send_frames(self._audio.flush())
        self._unplayed_marks.add(name)
        self._marks_played.clear()
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _clear(self) -> None:
        """The user barged in: Twilio drops its buffer (and echoes the marks it held)."""
        self._audio.reset()
        self._message_id = None
        self._playing_until = 0.0
        await self._send({"event": "clear", "streamSid": self.stream_sid})

    async def _let_it_play(self) -> None:
        """Before hanging up, wait for the caller to hear the last words (their marks come back)."""
        if not self._unplayed_marks:
            return
        remaining = max(0.0, self._playing_until - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(PLAYOUT_LIMIT_S, remaining + PLAYOUT_GRACE_S)):
                await self._marks_played.wait()
