"""A stub OpenAI-compatible speech server (`/v1/audio/transcriptions`, `/v1/audio/speech`) for tests.

It follows the documented formats (docs/providers.md "Remote speech"): transcriptions take a
multipart form (`file`, `model`, `language`, `prompt`, `response_format`) and answer `{"text": …}`
(`json`) or OpenAI's `verbose_json`; speech takes JSON `{model, input, voice, response_format,
speed?}` and streams the audio bytes: raw little-endian int16 mono for `pcm`, a WAV file written
the way ffmpeg writes one to a pipe (a LIST chunk, unknown sizes) for `wav`.

    stub = SpeechStub().start()                 # or: with SpeechStub() as stub:
    stub.transcript = Transcribe("hello there", language="en")   # or Fail(500, "boom"), Hang(), Malformed()
    stub.speech = Speak(rate=24000, tone_hz=700, chunks=4)       # or Fail(...), Hang(after_bytes=...), ...
    stub.base_url                               # "http://127.0.0.1:PORT" (the server root)
    stub.transcriptions[-1].wav_rate            # what the client sent
    stub.speeches[-1].body["voice"]
    stub.stop()

Speech audio is a sine tone (`tone_hz`), `seconds_per_char` long per input character, sent in
`chunks` pieces; with `gate` set, the stub sends the first piece and then waits for `stub.release()`
before the rest (so tests can see a first chunk arrive before the reply is finished).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.asgi_stub import AsgiStub

__all__ = ["Fail", "Hang", "Malformed", "Speak", "SpeechRequest", "SpeechStub", "Transcribe", "TranscriptionRequest"]


@dataclass
class Transcribe:
    """Answer transcriptions with `text`; `language` is what verbose_json reports (OpenAI names it)."""

    text: str
    language: str = "english"
    refuse: tuple[str, ...] = ()  # response formats answered with HTTP 400 (as gpt-4o-transcribe does)


@dataclass
class Speak:
    """Stream a tone at `rate` Hz (`channels` interleaved) in the format asked for, unless `force_format`."""

    rate: int = 24_000
    tone_hz: float = 700.0
    seconds_per_char: float = 0.02
    chunks: int = 4
    channels: int = 1
    gate: bool = False
    refuse: tuple[str, ...] = ()  # response formats answered with HTTP 400 (OpenAI's error shape)
    unknown_fields: tuple[str, ...] = ()  # body fields this server rejects with HTTP 422 (e.g. "instructions")
    force_format: str | None = None
    split_at_odd_bytes: bool = False
    content_type: str | None = None  # override the Content-Type header


@dataclass
class Fail:
    """An HTTP error; `shape` "openai" gives {"error": {"message"}}, "kokoro" FastAPI's nested detail."""

    status: int = 500
    message: str = "scripted failure"
    shape: str = "openai"


@dataclass
class Hang:
    """Send `after_bytes` bytes of audio (0: no response at all), then stall until the stub stops."""

    after_bytes: int = 0


@dataclass
class Malformed:
    """A 200 reply with this body and content type."""

    body: bytes = b"<html>not what you asked for</html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class TranscriptionRequest:
    """One transcription request: form fields, the uploaded file and headers."""

    fields: dict[str, str]
    filename: str
    file_content_type: str
    file: bytes
    headers: dict[str, str]

    @property
    def wav_rate(self) -> int:
        return self.wav_format[0]

    @property
    def wav_format(self) -> tuple[int, int, int, int]:
        """(rate, channels, sample width, frames) of the uploaded WAV."""
        with wave.open(io.BytesIO(self.file)) as wav:
            return wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()

    def samples(self) -> np.ndarray:
        with wave.open(io.BytesIO(self.file)) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


@dataclass
class SpeechRequest:
    """One speech request: its JSON body, headers, and how its reply went."""

    body: dict[str, Any]
    headers: dict[str, str]
    sent_bytes: int = 0
    finished: bool = False  # every byte of the reply was handed to the server
    aborted: bool = False  # the client went away before the end
    audio: bytes = b""  # the full audio the stub meant to send (the PCM payload, before framing)


def tone(rate: int, seconds: float, tone_hz: float, channels: int = 1) -> np.ndarray:
    """int16 samples of a sine tone (interleaved when channels > 1)."""
    n = max(1, int(rate * seconds))
    mono = (0.3 * np.sin(2 * np.pi * tone_hz * np.arange(n) / rate) * 32767).astype("<i2")
    return np.repeat(mono, channels) if channels > 1 else mono


def streaming_wav_header(rate: int, channels: int) -> bytes:
    """A WAV header as ffmpeg writes one to a pipe: sizes unknown (0xFFFFFFFF), a LIST chunk first."""
    info = b"INFOISFT" + struct.pack("<I", 14) + b"Lavf61.7.100\x00\x00"
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", len(info)) + info
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip


class SpeechStub(AsgiStub):
    """The server; see the module docstring. Thread-safe: configure and read from the test thread."""

    name = "speech stub"

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.transcript: Transcribe | Fail | Hang | Malformed = Transcribe("hello from the stub")
        self.speech: Speak | Fail | Hang | Malformed = Speak()
        self._transcriptions: list[TranscriptionRequest] = []
        self._speeches: list[SpeechRequest] = []
        self._release = threading.Event()

    # --- inspection ----------------------------------------------------------------------
    @property
    def transcriptions(self) -> list[TranscriptionRequest]:
        with self._lock:
            return list(self._transcriptions)

    @property
    def speeches(self) -> list[SpeechRequest]:
        with self._lock:
            return list(self._speeches)

    def clear(self) -> None:
        with self._lock:
            self._transcriptions.clear()
            self._speeches.clear()
        self._release.clear()

    def release(self) -> None:
        """Let a gated speech reply send the rest of its audio."""
        self._release.set()

    def wait_until(self, predicate: Any, timeout: float = 10.0) -> None:
        """Block until `predicate()` is true (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("speech stub: condition not reached")
            time.sleep(0.01)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        if self._server is not None:
            self._release.set()
        super().stop()

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
                Route("/v1/audio/speech", self._speak, methods=["POST"]),
            ]
        )

    # --- transcriptions ------------------------------------------------------------------
    async def _transcribe(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _openai_error(400, "file is required")
        recorded = TranscriptionRequest(
            fields={k: v for k, v in form.items() if isinstance(v, str)},
            filename=upload.filename or "",
            file_content_type=upload.content_type or "",
            file=await upload.read(),
            headers=dict(request.headers),
        )
        with self._lock:
            self._transcriptions.append(recorded)
            rule = self.transcript
        if isinstance(rule, Fail):
            return _error(rule)
        if isinstance(rule, Hang):
            await self._hang()
            return Response(status_code=503)
        if isinstance(rule, Malformed):
            return Response(rule.body, media_type=rule.content_type)
        response_format = recorded.fields.get("response_format", "json")
        if response_format in rule.refuse:
            return _openai_error(400, f"response_format '{response_format}' is not compatible with this model")
        if response_format == "text":
            return PlainTextResponse(rule.text)
        if response_format == "verbose_json":
            rate, _, _, frames = recorded.wav_format
            return JSONResponse(
                {"task": "transcribe", "language": rule.language, "duration": frames / rate, "text": rule.text,
                 "segments": []}
            )  # fmt: skip
        return JSONResponse({"text": rule.text})

    # --- speech --------------------------------------------------------------------------
    async def _speak(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _openai_error(400, "body is not JSON")
        recorded = SpeechRequest(body=body, headers=dict(request.headers))
        with self._lock:
            self._speeches.append(recorded)
            rule = self.speech
        if isinstance(rule, Fail):
            return _error(rule)
        if isinstance(rule, Malformed):
            return Response(rule.body, media_type=rule.content_type)
        text = str(body.get("input", ""))
        if isinstance(rule, Hang):
            samples = tone(24_000, 1.0, 440.0).tobytes()[: rule.after_bytes]
            recorded.audio = samples
            if not rule.after_bytes:
                await self._hang()
                return Response(status_code=503)
            return StreamingResponse(self._stream([samples], recorded, hang=True), media_type="audio/pcm")
        if unknown := [name for name in rule.unknown_fields if name in body]:
            return _openai_error(422, f"unknown fields: {', '.join(unknown)}")
        asked = str(body.get("response_format", "mp3"))
        if asked in rule.refuse or asked not in ("pcm", "wav"):
            return _openai_error(400, f"response_format {asked!r} is not supported")
        fmt = rule.force_format or asked
        pcm = tone(rule.rate, rule.seconds_per_char * max(1, len(text)), rule.tone_hz, rule.channels).tobytes()
        recorded.audio = pcm
        payload = (streaming_wav_header(rule.rate, rule.channels) if fmt == "wav" else b"") + pcm
        pieces = _split(payload, rule.chunks, odd=rule.split_at_odd_bytes)
        media = rule.content_type or ("audio/wav" if fmt == "wav" else "audio/pcm")
        return StreamingResponse(self._stream(pieces, recorded, gate=rule.gate), media_type=media)

    async def _stream(
        self, pieces: list[bytes], recorded: SpeechRequest, *, gate: bool = False, hang: bool = False
    ) -> AsyncIterator[bytes]:
        try:
            for i, piece in enumerate(pieces):
                if i == 1 and gate:
                    await asyncio.to_thread(self._release.wait)  # set by the test thread, or by stop()
                recorded.sent_bytes += len(piece)
                yield piece
            if hang:
                await self._hang()
                return
            recorded.finished = True
        finally:
            if not recorded.finished:
                recorded.aborted = True


def _split(data: bytes, chunks: int, *, odd: bool) -> list[bytes]:
    size = max(1, -(-len(data) // max(1, chunks)))
    if odd and size % 2 == 0:
        size += 1  # cut samples in half across network writes
    return [data[i : i + size] for i in range(0, len(data), size)]


def _openai_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status)


def _error(rule: Fail) -> JSONResponse:
    if rule.shape == "kokoro":
        detail = {"error": "processing_error", "message": rule.message, "type": "server_error"}
        return JSONResponse({"detail": detail}, rule.status)
    return _openai_error(rule.status, rule.message)

