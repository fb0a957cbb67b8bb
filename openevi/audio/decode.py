"""Incremental decoding of `audio_input` chunks to float32 mono at a target rate.

Clients send raw linear16 PCM (format from `session_settings.audio`), WAV, or the containers
browsers and SDKs produce (webm/opus from MediaRecorder, ogg/opus, mp4/aac). Containers are
demuxed by PyAV (its wheel ships FFmpeg) in one thread per stream, reading from a blocking buffer
that `push` feeds, so each byte is decoded once and MediaRecorder's header-less follow-up chunks
simply continue the stream. Resampling is soxr's streaming resampler.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

import av
import numpy as np
import soxr

__all__ = ["AudioDecoder", "DecodeError", "Format", "detect_format"]

logger = logging.getLogger(__name__)

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DETECT_BYTES = 12  # enough for "RIFF....WAVE" and "....ftyp"
_PUSH_WAIT_S = 5.0  # bound on how long a push waits for the demuxer to catch up
_JOIN_WAIT_S = 10.0
_MAX_CONTAINER_BACKLOG = 64 * 1024 * 1024  # refuse to buffer more undecoded bytes than this

# What a stream may declare (the same bounds as session_settings.audio): checked before any work,
# so a header claiming 1 Hz or 65,535 channels cannot make the resampler write gigabytes.
MIN_RATE = 8_000
MAX_RATE = 192_000
MAX_CHANNELS = 8
# Output allowed per input byte, in seconds of audio. A stream of small chunks may be nearly all
# silence (a muted microphone: Opus sends ~230 bytes/s), so the first 64 KiB of each chunk earn
# 20 ms per byte; bytes beyond that in one chunk earn 1 ms (an 8 kbit/s codec: a whole file sent in
# one message is real audio). Plus a fixed allowance for headers. A decompression bomb stops there.
SMALL_CHUNK_BYTES = 64 * 1024
SECONDS_PER_SMALL_BYTE = 0.02
SECONDS_PER_LARGE_BYTE = 0.001
OUTPUT_ALLOWANCE_S = 10.0
# A streamed container (webm, ogg, a WAV handed to FFmpeg) that yields no audio from this many bytes
# is not audio: FFmpeg would otherwise keep looking for the next page silently, and the client would
# never hear of it. (An mp4 with its index at the end yields audio only at its end: not counted.)
NO_AUDIO_BYTES = 32 * 1024


class DecodeError(Exception):
    """The audio cannot be decoded (garbage, unsupported codec, or a broken/truncated stream)."""


class Format(Enum):
    LINEAR16 = "linear16"
    WAV = "wav"
    WEBM = "webm"
    OGG = "ogg"
    MP4 = "mp4"


# FFmpeg demuxer names; forcing the format skips probing, which would wait for more bytes.
_DEMUXERS = {Format.WEBM: "matroska", Format.OGG: "ogg", Format.MP4: "mov", Format.WAV: "wav"}
# A WAV header says all there is to know; without this FFmpeg reads ~5 MB before the first packet.
_OPTIONS: dict[Format, dict[str, str]] = {Format.WAV: {"probesize": "32"}}


def detect_format(head: bytes, *, pcm_given: bool) -> Format | None:
    """The format announced by the first bytes of a stream; None when `head` is too short to say."""
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Format.WAV
    if head.startswith(_EBML_MAGIC):
        return Format.WEBM
    if head.startswith(b"OggS"):
        return Format.OGG
    if head[4:8] == b"ftyp":
        return Format.MP4
    if len(head) < _DETECT_BYTES and any(
        magic.startswith(head[: len(magic)]) for magic in (b"RIFF", _EBML_MAGIC, b"OggS")
    ):
        return None  # could still become a container header: wait for more bytes
    if len(head) < 8 and not pcm_given:
        return None
    if pcm_given:
        return Format.LINEAR16
    raise DecodeError(
        "Unrecognized audio: expected WAV, webm, ogg or mp4, or raw linear16 with "
        "session_settings.audio (encoding, sample_rate, channels)"
    )


def check_format(rate: int, channels: int) -> None:
    """Refuse a declared format outside what any real client sends, before decoding a byte of it."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise DecodeError(f"Unsupported sample rate {rate} Hz (expected {MIN_RATE}-{MAX_RATE})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise DecodeError(f"Unsupported channel count {channels} (expected 1-{MAX_CHANNELS})")


class _OutputBudget:
    """Bounds the audio a stream may produce by the bytes it was fed (the demuxer thread reads
    `allowed` while the pushing thread raises it: a stale read only delays one frame)."""

    def __init__(self, target_rate: int) -> None:
        self._rate = target_rate
        self.allowed = OUTPUT_ALLOWANCE_S * target_rate
        self.samples_out = 0
        self.bytes_in = 0

    def feed(self, size: int) -> None:
        self.bytes_in += size
        small = min(size, SMALL_CHUNK_BYTES)
        seconds = small * SECONDS_PER_SMALL_BYTE + (size - small) * SECONDS_PER_LARGE_BYTE
        self.allowed += seconds * self._rate

    def charge(self, samples: int) -> None:
        """Account for `samples` about to be produced; DecodeError when that exceeds the bound."""
        if self.samples_out + samples > self.allowed:
            raise DecodeError("Audio decodes to far more samples than its size allows")
        self.samples_out += samples


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float samples as float32 in [-1, 1]."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    scale = float(2 ** (8 * samples.dtype.itemsize - 1))
    return (samples.astype(np.float32) / scale).astype(np.float32)


class _Resampler:
    """Streaming mono resampler to the target rate; rebuilt if the source rate changes midstream."""

    def __init__(self, target_rate: int, budget: _OutputBudget | None = None) -> None:
        self._target = target_rate
        self._rate: int | None = None
        self._stream: Any = None
        self.budget = budget if budget is not None else _OutputBudget(target_rate)

    def process(self, mono: np.ndarray, rate: int) -> np.ndarray:
        check_format(rate, 1)
        self.budget.charge(-(-mono.size * self._target // rate))
        parts: list[np.ndarray] = []
        if rate != self._rate:
            parts.append(self.flush())
            self._rate = rate
            self._stream = None if rate == self._target else soxr.ResampleStream(rate, self._target, 1, dtype="float32")
        if self._stream is None:
            parts.append(mono.astype(np.float32, copy=False))
        else:
            parts.append(self._stream.resample_chunk(mono.astype(np.float32, copy=False)))
        return _concat(parts)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return _EMPTY
        out: np.ndarray = self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
        self._stream.clear()
        return out.astype(np.float32, copy=False)


_EMPTY = np.zeros(0, dtype=np.float32)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    if not parts:
        return _EMPTY
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _PcmDecoder:
    """Interleaved little-endian PCM: keeps a partial sample frame between chunks, downmixes to mono."""

    def __init__(self, rate: int, channels: int, dtype: np.dtype[Any], resampler: _Resampler) -> None:
        check_format(rate, channels)
        self._rate = rate
        self._channels = channels
        self._dtype = dtype
        self._frame_bytes = dtype.itemsize * channels
        self._partial = b""
        self._resampler = resampler

    def push(self, data: bytes) -> np.ndarray:
        data = self._partial + data
        usable = len(data) - len(data) % self._frame_bytes
        self._partial = data[usable:]
        if not usable:
            return _EMPTY
        samples = _to_float(self._integers(data[:usable]))
        if self._channels > 1:
            samples = samples.reshape(-1, self._channels).mean(axis=1, dtype=np.float32)
        return self._resampler.process(samples, self._rate)

    def _integers(self, frames: bytes) -> np.ndarray:
        """Whole sample frames as integer samples."""
        return np.frombuffer(frames, dtype=self._dtype)

    def flush(self) -> np.ndarray:
        self._partial = b""  # an incomplete final sample frame carries no usable audio
        return self._resampler.flush()


def _pcm24_to_int32(data: bytes) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
    wide = np.zeros((raw.shape[0], 4), dtype=np.uint8)
    wide[:, 1:] = raw  # little-endian: the low byte stays zero, sign lands in the top byte
    return wide.view("<i4").reshape(-1)


class _WavDecoder:
    """RIFF/WAVE parsed in place (streaming writers often put 0 or 0xFFFFFFFF as sizes).

    PCM and IEEE-float data are decoded here; other WAV codecs (µ-law, ADPCM, …) are handed to
    the container decoder. A second RIFF header after the first file's data starts a new file,
    for clients that send every chunk as a complete WAV.
    """

    def __init__(self, resampler: _Resampler, fallback: Callable[[bytes], np.ndarray]) -> None:
        self._resampler = resampler
        self._fallback = fallback
        self._buffer = b""
        self._pcm: _PcmDecoder | None = None
        self._data_left: int | None = None  # bytes of the data chunk still to come; None = unbounded
        self._skip = 0  # bytes of a non-audio chunk still to skip
        self._header_seen = False
        self._delegated = False
        self._fmt: tuple[int, int, int, int] | None = None  # codec, channels, rate, bits

    def push(self, data: bytes) -> np.ndarray:
        if self._delegated:
            return self._fallback(data)
        self._buffer += data
        out: list[np.ndarray] = []
        while self._buffer:
            if self._pcm is not None and (self._data_left is None or self._data_left > 0):
                take = self._buffer if self._data_left is None else self._buffer[: self._data_left]
                self._buffer = self._buffer[len(take) :]
                if self._data_left is not None:
                    self._data_left -= len(take)
                out.append(self._pcm.push(take))
                continue
            if self._skip:
                n = min(self._skip, len(self._buffer))
                self._buffer, self._skip = self._buffer[n:], self._skip - n
                continue
            if not self._parse_header():
                break
        return _concat(out)

    def _parse_header(self) -> bool:
        """Consume one RIFF header or chunk header; False when more bytes are needed."""
        buf = self._buffer
        if self._pcm is not None and self._data_left == 0:
            self._pcm = None
            self._header_seen = False  # the next thing may be trailing chunks or a new RIFF file
        if buf[:4] == b"RIFF":
            if len(buf) < 12:
                return False
            if buf[8:12] != b"WAVE":
                raise DecodeError("RIFF data that is not WAVE")
            self._buffer = buf[12:]
            self._header_seen = True
            self._fmt = None
            return True
        if not self._header_seen and self._fmt is None:
            if len(buf) < 4:
                return False
            raise DecodeError("Expected a WAV (RIFF) header")
        if len(buf) < 8:
            return False
        chunk_id, size = buf[:4], struct.unpack("<I", buf[4:8])[0]
        if chunk_id == b"fmt ":
            if len(buf) < 8 + size:
                return False
            self._fmt = self._parse_fmt(buf[8 : 8 + size])
            self._buffer = buf[8 + size + (size & 1) :]
            return True
        if chunk_id == b"data":
            if self._fmt is None:
                raise DecodeError("WAV data chunk before its fmt chunk")
            self._buffer = buf[8:]
            self._data_left = None if size in (0, 0xFFFFFFFF) else size
            self._pcm = self._pcm_decoder(self._fmt)
            return True
        if not chunk_id.isascii() or not chunk_id.strip():
            raise DecodeError(f"Corrupt WAV chunk header {chunk_id!r}")
        self._buffer = buf[8:]
        self._skip = size + (size & 1)  # LIST, fact, … (chunks are word-aligned)
        return True

    def _parse_fmt(self, body: bytes) -> tuple[int, int, int, int]:
        if len(body) < 16:
            raise DecodeError("WAV fmt chunk too short")
        codec, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if codec == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real codec is in the GUID
            codec = struct.unpack("<H", body[24:26])[0]
        check_format(rate, channels)  # also before a non-PCM codec is handed to FFmpeg
        return codec, channels, rate, bits

    def _pcm_decoder(self, fmt: tuple[int, int, int, int]) -> _PcmDecoder:
        codec, channels, rate, bits = fmt
        dtypes: dict[tuple[int, int], str] = {
            (1, 8): "u1",
            (1, 16): "<i2",
            (1, 32): "<i4",
            (3, 32): "<f4",
            (3, 64): "<f8",
        }
        if (codec, bits) == (1, 24):
            return _Pcm24Decoder(rate, channels, self._resampler)
        dtype = dtypes.get((codec, bits))
        if dtype is None and codec in (1, 3):
            kind = "PCM" if codec == 1 else "float"
            raise DecodeError(
                f"Unsupported WAV sample format: {bits}-bit {kind} (8, 16, 24 or 32-bit PCM, 32 or 64-bit float)"
            )
        if dtype is None:
            # Not plain PCM: FFmpeg decodes it. It needs the whole header again, so rebuild one.
            self._delegated = True
            raise _Delegate(self._rebuild_header(fmt))
        return _PcmDecoder(rate, channels, np.dtype(dtype), self._resampler)

    def _rebuild_header(self, fmt: tuple[int, int, int, int]) -> bytes:
        codec, channels, rate, bits = fmt
        block = max(1, channels * bits // 8)
        fmt_body = struct.pack("<HHIIHH", codec, channels, rate, rate * block, block, bits)
        return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", len(fmt_body)) + fmt_body + b"data\xff\xff\xff\xff"

    def flush(self) -> np.ndarray:
        if self._delegated:
            return _EMPTY
        if self._pcm is None and self._buffer:
            raise DecodeError("Truncated WAV header")
        return self._pcm.flush() if self._pcm is not None else self._resampler.flush()


class _Delegate(Exception):
    """Internal: the WAV codec is not PCM; carries a header for FFmpeg."""

    def __init__(self, header: bytes) -> None:
        super().__init__("delegate")
        self.header = header


class _Pcm24Decoder(_PcmDecoder):
    def __init__(self, rate: int, channels: int, resampler: _Resampler) -> None:
        super().__init__(rate, channels, np.dtype("<i4"), resampler)
        self._frame_bytes = 3 * channels

    def _integers(self, frames: bytes) -> np.ndarray:
        return _pcm24_to_int32(frames)


class _BlockingBuffer:
    """A read-only file for FFmpeg: `read` blocks until `feed` brings bytes or `close` ends the stream.

    `seekable=True` keeps every byte (mp4 files may keep their index at the end); otherwise bytes
    are dropped once read, so a long chat holds no more than what FFmpeg has not consumed yet.
    """

    def __init__(self, *, seekable: bool) -> None:
        self._cond = threading.Condition()
        self._data = bytearray()
        self._offset = 0  # stream position of self._data[0]
        self._pos = 0
        self._closed = False
        self._keep = seekable
        self.starved = False  # the reader is waiting and every fed byte has been read
        # Called (from the demuxer thread, under the lock) when it goes idle: wakes an async waiter.
        self.on_idle: Callable[[], None] | None = None

    def seekable(self) -> bool:
        return self._keep  # PyAV asks this before using seek/tell

    def feed(self, data: bytes) -> None:
        with self._cond:
            if len(self._data) + len(data) - (self._pos - self._offset) > _MAX_CONTAINER_BACKLOG:
                raise DecodeError("Too much undecodable audio buffered")
            self._data += data
            self.starved = False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while self._pos - self._offset >= len(self._data) and not self._closed:
                self._idle()
                self._cond.wait()
            start = self._pos - self._offset
            end = len(self._data) if size < 0 else min(len(self._data), start + size)
            chunk = bytes(self._data[start:end])
            self._pos += len(chunk)
            if not self._keep:
                del self._data[:end]
                self._offset += end
            if not chunk:
                self._idle()
            return chunk

    def _idle(self) -> None:
        self.starved = True
        self._cond.notify_all()
        if self.on_idle is not None:
            self.on_idle()

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._cond:
            if whence == 1:
                offset += self._pos
            elif whence == 2:
                while not self._closed:  # the end is only known once the stream is over
                    self._idle()
                    self._cond.wait()
                offset += self._offset + len(self._data)
            self._pos = max(0, offset)
            return self._pos

    def tell(self) -> int:
        return self._pos

    @property
    def condition(self) -> threading.Condition:
        return self._cond


def _mp4_index_first(head: bytes) -> bool | None:
    """Whether an mp4's index (moov) precedes its media (fragmented or "faststart"); None: need more bytes.

    Such files stream; others keep the index at the end, so FFmpeg must seek there, and their audio
    comes out only once the whole file has arrived.
    """
    if len(head) < 8:
        return None
    ftyp_size = struct.unpack(">I", head[:4])[0]
    if ftyp_size < 8:
        return False  # 64-bit or to-end sizes in ftyp: unusual; take the safe (seekable) path
    if len(head) < ftyp_size + 8:
        return None
    return head[ftyp_size + 4 : ftyp_size + 8] == b"moov"


class _ContainerDecoder:
    """One demux/decode thread per stream, fed through a blocking buffer.

    `push` never waits: it returns what is decoded so far. `settle` awaits (without blocking the
    event loop) until the demuxer has read everything fed, so the async path gets all the audio a
    chunk completes at once; the sync path gets it on a later push.
    """

    def __init__(self, fmt: Format, resampler: _Resampler, *, seekable: bool = False) -> None:
        self.streaming = not seekable  # audio comes out as bytes come in
        self._fmt = fmt
        self._resampler = resampler
        self._buffer = _BlockingBuffer(seekable=seekable)
        self._out: list[np.ndarray] = []
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"openevi-decode-{fmt.value}", daemon=True)
        self._thread.start()

    def push(self, data: bytes) -> np.ndarray:
        self._buffer.feed(data)
        return self._take()

    def wait_idle(self, timeout: float) -> np.ndarray:
        """Block until the demuxer has read everything fed (for callers off the event loop)."""
        with self._buffer.condition:
            self._buffer.condition.wait_for(lambda: self._buffer.starved or self._done, timeout)
        return self._take()

    async def settle(self, wait_s: float) -> np.ndarray:
        """Await the demuxer reading everything fed so far (or dying); then what it decoded."""
        loop = asyncio.get_running_loop()
        idle = asyncio.Event()
        with self._buffer.condition:
            if not (self._buffer.starved or self._done):

                def wake() -> None:
                    loop.call_soon_threadsafe(idle.set)

                self._buffer.on_idle = wake
            else:
                idle.set()
        try:
            async with asyncio.timeout(wait_s):
                await idle.wait()
        except TimeoutError:
            pass  # a slow demuxer: its audio comes with a later chunk
        finally:
            with self._buffer.condition:
                self._buffer.on_idle = None
        return self._take()

    async def aclose(self) -> None:
        """End the stream and wait (off the event loop) for the demuxer thread to exit."""
        self._buffer.close()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, _JOIN_WAIT_S)

    def flush(self) -> np.ndarray:
        self._buffer.close()
        self._thread.join(_JOIN_WAIT_S)
        if self._thread.is_alive():
            raise DecodeError("Audio decoder did not finish")
        return self._take()

    def close(self) -> None:
        self._buffer.close()

    def _take(self) -> np.ndarray:
        with self._buffer.condition:
            out, self._out = self._out, []
            error = self._error
        if error is not None:
            raise DecodeError(f"Cannot decode {self._fmt.value} audio: {error}") from error
        return _concat(out)

    def _emit(self, samples: np.ndarray) -> None:
        if samples.size:
            with self._buffer.condition:
                self._out.append(samples)

    def _run(self) -> None:
        try:
            with av.open(
                self._buffer, mode="r", format=_DEMUXERS[self._fmt], container_options=_OPTIONS.get(self._fmt)
            ) as container:
                if not container.streams.audio:
                    raise DecodeError("no audio stream")
                stream = container.streams.audio[0]
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        check_format(frame.sample_rate, frame.layout.nb_channels)
                        self._emit(self._resampler.process(_frame_to_mono(frame), frame.sample_rate))
            self._emit(self._resampler.flush())
        except BaseException as exc:  # reported to the caller by the next push/flush
            with self._buffer.condition:
                self._error = exc
        finally:
            with self._buffer.condition:
                self._done = True
                self._buffer.condition.notify_all()
                if self._buffer.on_idle is not None:
                    self._buffer.on_idle()


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame of any sample format as float32 mono."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T  # packed: (1, samples*channels) interleaved
    samples = _to_float(array)
    return samples.mean(axis=0, dtype=np.float32) if channels > 1 else samples.reshape(-1)


class AudioDecoder:
    """Bytes of one audio stream in, float32 mono at `target_rate` out, chunk by chunk.

    `pcm_format` is `(sample_rate, channels)` of raw linear16 input (from `session_settings.audio`);
    without it, headerless bytes are an error. The format is detected from the first bytes. A
    DecodeError leaves the decoder failed: `reset()` starts over with a new stream.
    """

    def __init__(self, target_rate: int = 16_000, pcm_format: tuple[int, int] | None = None) -> None:
        self.target_rate = target_rate
        self.pcm_format = pcm_format
        self.format: Format | None = None
        self._head = b""
        self._impl: _PcmDecoder | _WavDecoder | _ContainerDecoder | None = None
        self._container: _ContainerDecoder | None = None
        self._failed: DecodeError | None = None
        self._budget = _OutputBudget(target_rate)
        self._lock = asyncio.Lock()  # push_async runs in a thread: one chunk at a time, in order

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def push(self, data: bytes) -> np.ndarray:
        """Decode one chunk; returns the audio it completes (possibly empty).

        Blocks until a container demuxer has caught up: off the event loop only (see push_async)."""
        out = self._push(data)
        if self._container is None:
            return out
        try:
            more = self._container.wait_idle(_PUSH_WAIT_S)
            self._check_audio_found()
        except DecodeError as exc:
            self._fail(exc)
            raise
        return _concat([out, more])

    def _push(self, data: bytes) -> np.ndarray:
        self._check()
        self._budget.feed(len(data))
        try:
            if self._impl is None:
                self._head += data
                fmt = detect_format(self._head, pcm_given=self.pcm_format is not None)
                if fmt is None or (fmt is Format.MP4 and _mp4_index_first(self._head) is None):
                    return _EMPTY
                self._start(fmt)
                data, self._head = self._head, b""
            assert self._impl is not None
            try:
                return self._impl.push(data)
            except _Delegate as delegate:
                return self._delegate_wav(delegate.header)
        except DecodeError as exc:
            self._fail(exc)
            raise

    async def push_async(self, data: bytes) -> np.ndarray:
        """`push` for the event loop: parsing, conversion and resampling run in a worker thread
        (a large chunk costs the loop nothing), and container audio is awaited, never waited for."""
        async with self._lock:
            out = await asyncio.to_thread(self._push, data)
            if self._container is None:
                return out
            try:
                more = await self._container.settle(_PUSH_WAIT_S)
                self._check_audio_found()
            except DecodeError as exc:
                self._fail(exc)
                raise
            return _concat([out, more])

    async def aclose(self) -> None:
        """Stop the demuxer thread, if any, and wait for it off the event loop."""
        if self._container is not None:
            await self._container.aclose()

    def flush(self) -> np.ndarray:
        """End of the stream: returns the audio still held back (decoder and resampler tails)."""
        self._check()
        try:
            if self._impl is None:
                if not self._head:
                    return _EMPTY
                # Fewer bytes than a container header: PCM if that is configured, else undecodable.
                fmt = detect_format(self._head + b"\0" * _DETECT_BYTES, pcm_given=self.pcm_format is not None)
                if fmt is not Format.LINEAR16:
                    raise DecodeError(f"Audio too short to decode ({len(self._head)} bytes)")
                self._start(fmt)
                data, self._head = self._head, b""
                assert self._impl is not None
                return _concat([self._impl.push(data), self._impl.flush()])
            parts = [self._impl.flush()]
            if self._container is not None and self._container is not self._impl:
                parts.append(self._container.flush())  # a WAV handed over to FFmpeg
            return _concat(parts)
        except DecodeError as exc:
            self._fail(exc)
            raise

    def reset(self) -> None:
        """Forget the current stream (after an error, or before a new one)."""
        self.close()
        self.format = None
        self._head = b""
        self._impl = None
        self._container = None
        self._failed = None
        self._budget = _OutputBudget(self.target_rate)

    def close(self) -> None:
        """Stop the demuxer thread, if any."""
        if self._container is not None:
            self._container.close()

    def __del__(self) -> None:
        # A chat that ends without flush() must not leave its demuxer thread blocked forever.
        if getattr(self, "_container", None) is not None:
            self.close()

    def _check_audio_found(self) -> None:
        assert self._container is not None
        if self._container.streaming and self._budget.samples_out == 0 and self._budget.bytes_in > NO_AUDIO_BYTES:
            kind = self.format.value if self.format is not None else "audio"
            raise DecodeError(f"No audio found in the first {self._budget.bytes_in} bytes of the {kind} stream")

    def _check(self) -> None:
        if self._failed is not None:
            raise DecodeError(f"Decoder failed earlier ({self._failed}); reset() it for a new stream")

    def _fail(self, exc: DecodeError) -> None:
        self._failed = exc
        self.close()

    def _start(self, fmt: Format) -> None:
        self.format = fmt
        resampler = _Resampler(self.target_rate, self._budget)
        if fmt is Format.LINEAR16:
            assert self.pcm_format is not None
            rate, channels = self.pcm_format
            self._impl = _PcmDecoder(rate, channels, np.dtype("<i2"), resampler)
        elif fmt is Format.WAV:
            self._impl = _WavDecoder(resampler, self._feed_container)
        else:
            seekable = fmt is Format.MP4 and not _mp4_index_first(self._head)
            self._container = self._impl = _ContainerDecoder(fmt, resampler, seekable=seekable)

    def _delegate_wav(self, header: bytes) -> np.ndarray:
        """A non-PCM WAV: FFmpeg decodes the rest of the stream after a rebuilt header."""
        assert isinstance(self._impl, _WavDecoder)
        rest, self._impl._buffer = self._impl._buffer, b""
        return self._feed_container(header + rest)

    def _feed_container(self, data: bytes) -> np.ndarray:
        if self._container is None:
            self._container = _ContainerDecoder(Format.WAV, _Resampler(self.target_rate, self._budget))
        return self._container.push(data)
