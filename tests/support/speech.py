"""Synthetic speech for speech-input tests and benchmarks: espeak-ng (Debian) plus PyAV encoders."""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess

import av
import numpy as np
import soxr  # type: ignore[import-untyped]

RATE = 16_000

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "I would like to book a table for two people tonight.",
    "Please remind me to call my sister tomorrow morning.",
    "What is the weather going to be like this weekend?",
    "My favorite color is blue and I love the ocean.",
    "Can you tell me how to get to the train station?",
    "The meeting has been moved to three o'clock on Friday.",
    "She bought apples, oranges and bananas at the market.",
    "Turn off the lights in the kitchen, please.",
    "How many people live in this city?",
    "We should leave early to avoid the traffic.",
    "The children played football in the park all afternoon.",
]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=256)
def _espeak(text: str, voice: str, rate: int) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text], check=True, capture_output=True
    ).stdout
    with av.open(io.BytesIO(wav), format="wav") as container:
        stream = container.streams.audio[0]
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        source_rate = stream.rate
    return (pcm.astype(np.float32) / 32768.0), source_rate


def speak(text: str, *, voice: str = "en-us", rate: int = 160, sample_rate: int = RATE) -> np.ndarray:
    """espeak-ng speech as float32 mono at `sample_rate` (espeak renders 22.05 kHz)."""
    audio, source_rate = _espeak(text, voice, rate)
    return np.asarray(soxr.resample(audio, source_rate, sample_rate), dtype=np.float32)


def to_linear16(audio: np.ndarray) -> bytes:
    return bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


_FRAME_SIZES = {"libopus": 960, "aac": 1024}


def encode(
    audio: np.ndarray,
    *,
    fmt: str,
    codec: str,
    sample_rate: int = RATE,
    codec_rate: int = 48_000,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode float32 mono audio into a container (e.g. webm/libopus, ogg/libopus, mp4/aac, wav/pcm_s16le)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=codec_rate, layout="mono")  # type: ignore[call-overload]
        resampler = av.AudioResampler(
            format=stream.format, layout="mono", rate=codec_rate, frame_size=_FRAME_SIZES.get(codec)
        )
        frame = av.AudioFrame.from_ndarray(to_int16_2d(audio), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


class _Tap(io.RawIOBase):
    """A write-only sink that keeps what a muxer wrote, so it can be cut wherever the clock says."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def encode_timesliced(
    audio: np.ndarray,
    *,
    slice_ms: int = 100,
    fmt: str = "webm",
    codec: str = "libopus",
    sample_rate: int = RATE,
    codec_rate: int = 48_000,
) -> list[bytes]:
    """Encode like a browser's `MediaRecorder.start(slice_ms)`: one chunk per `slice_ms` of audio,
    holding whatever the muxer wrote during that slice.

    Opus is variable-rate, so slicing a finished stream by bytes sends silence far faster than real
    time and speech slower; this follows the clock. The muxer writes a cluster every slice (WebM
    "live" mode), as Chrome's recorder does."""
    tap = _Tap()
    chunks: list[bytes] = []
    options = {"live": "1", "cluster_time_limit": str(slice_ms)} if fmt == "webm" else {}
    step = sample_rate * slice_ms // 1000
    with av.open(tap, mode="w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=codec_rate, layout="mono")  # type: ignore[call-overload]
        resampler = av.AudioResampler(
            format=stream.format, layout="mono", rate=codec_rate, frame_size=_FRAME_SIZES.get(codec)
        )
        cut = 0
        for start in range(0, audio.size, step):
            frame = av.AudioFrame.from_ndarray(to_int16_2d(audio[start : start + step]), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)
            chunks.append(bytes(tap.data[cut:]))
            cut = len(tap.data)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if len(tap.data) > cut:
        chunks[-1] += bytes(tap.data[cut:])  # the stream's tail belongs to the last slice
    return chunks


def to_int16_2d(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)


def split_evenly(data: bytes, *, duration_s: float, chunk_ms: float) -> list[bytes]:
    """Cut encoded bytes into pieces of about `chunk_ms` of audio each, like MediaRecorder timeslices."""
    pieces = max(1, round(duration_s * 1000 / chunk_ms))
    step = max(1, len(data) // pieces)
    return [data[i : i + step] for i in range(0, len(data), step)]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference length (case and punctuation ignored)."""
    ref, hyp = _words(reference), _words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
        previous = current
    return previous[-1] / max(1, len(ref))


_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "10": "ten"}


def _words(text: str) -> list[str]:
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("o'clock", "oclock")).split()
    return [_NUMBERS.get(w, w) for w in words]
