"""Speech synthesis offloaded to an OpenAI-compatible `POST /v1/audio/speech` server.

Served by OpenAI itself, Kokoro-FastAPI, Speaches, vLLM-omni and others, typically on a GPU machine.
The request is JSON `{model, input, voice, response_format, speed?}`; the reply is the audio itself,
read as it streams in. `pcm` (raw little-endian int16 mono; 24 kHz at OpenAI and Kokoro, the model's
own rate at Speaches) needs no parsing and is preferred; `wav` is parsed from its header, which gives
the rate. A server that refuses `pcm` is asked again for `wav` (once, then remembered). Audio at
another rate than ours is resampled with soxr. Formats and servers: docs/providers.md.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Literal

import httpx
import numpy as np
import soxr

from openevi.speech.remote_http import audio_url, auth_headers, describe_failure, error_text, make_client
from openevi.speech.tts.base import TTSError
from openevi.speech.voices import Voice

__all__ = ["OpenAIAudioTTS", "PcmDecoder", "WavDecoder", "parse_voice_map"]

logger = logging.getLogger(__name__)

OUTPUT_RATE = 24_000  # the engine's audio_output rate (as Piper's)
Format = Literal["pcm", "wav"]
_FORMATS: tuple[Format, ...] = ("pcm", "wav")
# Statuses with which servers refuse a parameter value (OpenAI 400, FastAPI 422, some 415).
_REFUSED = (400, 415, 422)
_UNBOUNDED = (0, 0xFFFFFFFF)  # data sizes that streaming writers (ffmpeg to a pipe) put in the header
_WAVE_FORMAT_PCM, _WAVE_FORMAT_FLOAT, _WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE
_MAX_HEADER = 64 * 1024  # a WAV header (with LIST/INFO chunks) larger than this is not one


def parse_voice_map(text: str) -> dict[str, str]:
    """`"Joe=am_michael, Ava Song=af_heart"` as a dict (keys: openevi voice names or ids)."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        local, sep, remote = item.partition("=")
        if not sep or not local.strip() or not remote.strip():
            raise TTSError(f"Bad voice mapping {item.strip()!r}: expected 'openevi voice=remote voice'")
        mapping[local.strip()] = remote.strip()
    return mapping


class _Resampler:
    """int16 mono at `rate` → int16 mono at OUTPUT_RATE, streaming (soxr keeps filter state between chunks)."""

    def __init__(self, rate: int, quality: str) -> None:
        self._stream = (
            None if rate == OUTPUT_RATE else soxr.ResampleStream(rate, OUTPUT_RATE, 1, dtype="int16", quality=quality)
        )

    def feed(self, samples: np.ndarray, *, last: bool = False) -> bytes:
        if self._stream is None:
            return samples.astype("<i2", copy=False).tobytes()
        out: np.ndarray = self._stream.resample_chunk(samples, last=last)
        return out.astype("<i2", copy=False).tobytes()


class PcmDecoder:
    """Raw little-endian int16 mono at `rate`; a sample split across two network reads is carried over."""

    def __init__(self, rate: int, quality: str = "HQ") -> None:
        self._resampler = _Resampler(rate, quality)
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        data = self._carry + data
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        return self._resampler.feed(np.frombuffer(data[:whole], dtype="<i2")) if whole else b""

    def finish(self) -> bytes:
        return self._resampler.feed(np.zeros(0, dtype=np.int16), last=True)


class WavDecoder:
    """A streamed RIFF/WAVE file: header chunks are skipped up to `data`, whose samples are decoded as
    they arrive. 16-bit PCM and 32-bit float, any rate and channel count (channels are averaged)."""

    def __init__(self, quality: str = "HQ") -> None:
        self._quality = quality
        self._header = b""
        self._pcm: PcmDecoder | None = None
        self._float = False
        self._channels = 1
        self._rate = 0
        self._frame = 2
        self._remaining: int | None = None  # bytes of `data` still expected; None = until the stream ends
        self._carry = b""

    @property
    def sample_rate(self) -> int | None:
        return None if self._pcm is None else self._rate

    def feed(self, data: bytes) -> bytes:
        if self._pcm is None:
            self._header += data
            data = self._parse_header()
            if self._pcm is None:
                return b""
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        data = self._carry + data
        whole = len(data) - len(data) % self._frame
        self._carry = data[whole:]
        return self._decode(data[:whole]) if whole else b""

    def finish(self) -> bytes:
        if self._pcm is None:
            raise TTSError("the WAV stream ended before its audio data began")
        return self._pcm.finish()

    def _decode(self, data: bytes) -> bytes:
        assert self._pcm is not None
        if self._float:
            floats = np.frombuffer(data, dtype="<f4")
            if self._channels > 1:
                floats = floats.reshape(-1, self._channels).mean(axis=1)
            pcm = (np.clip(floats, -1.0, 1.0) * 32767.0).astype("<i2")
        else:
            pcm = np.frombuffer(data, dtype="<i2")
            if self._channels > 1:
                pcm = np.round(pcm.reshape(-1, self._channels).mean(axis=1)).astype("<i2")
        return self._pcm.feed(pcm.tobytes())

    def _parse_header(self) -> bytes:
        """Consume header chunks; returns the bytes after the `data` chunk header once it is found."""
        buf = self._header
        if len(buf) >= 12 and (buf[:4] != b"RIFF" or buf[8:12] != b"WAVE"):
            raise TTSError(f"expected a WAV file, got bytes starting {buf[:12]!r}")
        offset = 12
        fmt_seen = False
        while len(buf) >= offset + 8:
            chunk_id, size = buf[offset : offset + 4], struct.unpack_from("<I", buf, offset + 4)[0]
            body = offset + 8
            if chunk_id == b"data":
                if not fmt_seen:
                    raise TTSError("the WAV stream has no 'fmt ' chunk before its data")
                self._remaining = None if size in _UNBOUNDED else size
                self._pcm = PcmDecoder(self._rate, self._quality)
                self._header = b""
                return buf[body:]
            if len(buf) < body + size:
                break
            if chunk_id == b"fmt ":
                self._parse_fmt(buf[body : body + size])
                fmt_seen = True
            offset = body + size + (size & 1)  # chunks are padded to an even size
        if len(buf) > _MAX_HEADER:
            raise TTSError(f"no audio data in the first {_MAX_HEADER} bytes of the WAV stream")
        return b""

    def _parse_fmt(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise TTSError("the WAV 'fmt ' chunk is too short")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
        if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
            tag = struct.unpack_from("<H", fmt, 24)[0]  # the sub-format GUID starts with the real tag
        if (tag, bits) == (_WAVE_FORMAT_PCM, 16):
            self._float = False
        elif (tag, bits) == (_WAVE_FORMAT_FLOAT, 32):
            self._float = True
        else:
            raise TTSError(f"unsupported WAV encoding (format {tag}, {bits} bits); use 16-bit PCM or pcm")
        if channels < 1 or rate < 1:
            raise TTSError(f"bad WAV header: {channels} channels at {rate} Hz")
        self._channels, self._rate = channels, rate
        self._frame = channels * bits // 8


def _content_rate(content_type: str) -> int | None:
    """`audio/pcm;rate=22050` (a few servers say the rate of raw PCM this way)."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() in ("rate", "samplerate", "sample_rate") and value.strip().isdigit():
            return int(value.strip())
    return None


def _is_wav(content_type: str, first: bytes) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind in ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave") or (
        first[:4] == b"RIFF" and first[8:12] == b"WAVE"
    )


class OpenAIAudioTTS:
    """A remote speech server behind the TextToSpeech contract: int16 mono at 24 kHz, streamed.

    `voice` is the remote voice used for every openevi voice not in `voices` (keyed by openevi voice
    name or id). `response_format` is what is asked for first ("pcm" or "wav"); `pcm_sample_rate` is
    the rate of the server's raw PCM (OpenAI and Kokoro: 24000). `read_timeout` bounds each silence
    in the audio stream, `connect_timeout` connecting.
    """

    sample_rate: int = OUTPUT_RATE

    def __init__(
        self,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        model: str = "tts-1",
        voice: str = "alloy",
        voices: Mapping[str, str] | str | None = None,
        response_format: str = "pcm",
        pcm_sample_rate: int = 24_000,
        speed: float | None = None,
        instructions: bool = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        quality: str = "HQ",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.strip():
            raise TTSError("The TTS provider 'openai' needs a base URL (OPENEVI_TTS_BASE_URL)")
        if response_format not in _FORMATS:
            raise TTSError(f"TTS response format must be one of {', '.join(_FORMATS)}, not {response_format!r}")
        if pcm_sample_rate < 1:
            raise TTSError(f"bad PCM sample rate {pcm_sample_rate}")
        self.url = audio_url(base_url, "speech")
        self.model = model
        self.voice = voice
        self.voices = parse_voice_map(voices) if isinstance(voices, str) else dict(voices or {})
        self._format: Format = "wav" if response_format == "wav" else "pcm"
        self._pcm_rate = pcm_sample_rate
        self._speed = speed
        self._instructions = instructions  # send a reply's delivery style; dropped if the server refuses it
        self._quality = quality
        self._headers = auth_headers(api_key)
        self._client = make_client(connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport)
        self._closed = False

    def remote_voice(self, voice: Voice) -> str:
        """The server's voice name for an openevi voice."""
        return self.voices.get(voice.name) or self.voices.get(voice.id) or self.voice

    def build_body(self, text: str, voice: Voice, response_format: Format) -> dict[str, Any]:
        """The JSON body of one request."""
        body: dict[str, Any] = {
            "model": self.model,
            "input": text,
            "voice": self.remote_voice(voice),
            "response_format": response_format,
        }
        if self._speed is not None:
            body["speed"] = self._speed
        if voice.instructions and self._instructions:
            body["instructions"] = voice.instructions  # a reply's delivery style (speech/tts/style.py)
        return body

    async def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        """Stream int16 mono PCM at 24 kHz as the server sends it; closing the iterator closes the response."""
        if self._closed:
            raise TTSError("The remote TTS provider is closed")
        if not text.strip():
            return
        formats: tuple[Format, ...] = ("pcm", "wav") if self._format == "pcm" else ("wav",)
        for attempt, response_format in enumerate(formats):
            try:
                async with self._client.stream(
                    "POST", self.url, json=self.build_body(text, voice, response_format), headers=self._headers
                ) as response:
                    if response.status_code >= 400:
                        message = error_text(await response.aread())
                        if response.status_code in _REFUSED and voice.instructions and self._instructions:
                            # A server that does not know `instructions` may refuse the request: say it
                            # once, and send the style no more.
                            logger.warning(
                                "TTS server at %s refused instructions (HTTP %d: %s); not sending them",
                                self.url, response.status_code, message,
                            )  # fmt: skip
                            self._instructions = False
                            async for pcm in self.synthesize(text, voice=voice):
                                yield pcm
                            return
                        if response.status_code in _REFUSED and attempt + 1 < len(formats):
                            logger.warning(
                                "TTS server at %s refused %s (HTTP %d: %s); trying wav",
                                self.url, response_format, response.status_code, message,
                            )  # fmt: skip
                            continue
                        raise TTSError(
                            f"The TTS server at {self.url} returned HTTP {response.status_code}: {message}"
                        )
                    if response_format == "wav" and self._format == "pcm":
                        logger.warning("TTS server at %s: asking for wav from now on", self.url)
                        self._format = "wav"
                    async for pcm in self._decode(response):
                        yield pcm
                    return
            except httpx.HTTPError as exc:
                raise TTSError(describe_failure("The TTS server", self.url, exc, self._client.timeout)) from exc

    async def _decode(self, response: httpx.Response) -> AsyncGenerator[bytes, None]:
        content_type = response.headers.get("content-type", "")
        decoder: PcmDecoder | WavDecoder | None = None
        head = b""  # the first bytes, until there are enough to tell a WAV header from raw PCM
        try:
            async for data in response.aiter_bytes():
                if decoder is None:
                    head += data
                    if len(head) < 12:
                        continue
                    decoder = self._decoder_for(content_type, head)
                    data, head = head, b""
                if pcm := decoder.feed(data):
                    yield pcm
            if decoder is None and head:  # a reply shorter than a WAV header
                decoder = self._decoder_for(content_type, head)
                if pcm := decoder.feed(head):
                    yield pcm
            if decoder is None:
                logger.warning("TTS server at %s sent an empty reply", self.url)
                return
            if tail := decoder.finish():
                yield tail
        except TTSError as exc:
            raise TTSError(f"The TTS server at {self.url} sent bad audio: {exc}") from exc

    def _decoder_for(self, content_type: str, head: bytes) -> PcmDecoder | WavDecoder:
        if _is_wav(content_type, head):
            return WavDecoder(self._quality)
        return PcmDecoder(_content_rate(content_type) or self._pcm_rate, self._quality)

    async def aclose(self) -> None:
        """Close the connection pool; later calls fail."""
        self._closed = True
        await self._client.aclose()
