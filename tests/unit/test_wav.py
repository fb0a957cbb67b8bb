"""WAV framing of PCM chunks, checked with the stdlib parser."""

from __future__ import annotations

import io
import struct
import wave
from typing import NamedTuple

import pytest

from openevi.audio.wav import pcm_duration_ms, wav_chunk


class Params(NamedTuple):
    nchannels: int
    sampwidth: int
    framerate: int
    nframes: int


def _read(data: bytes) -> tuple[Params, bytes]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        params = Params(reader.getnchannels(), reader.getsampwidth(), reader.getframerate(), reader.getnframes())
        return params, reader.readframes(reader.getnframes())


def test_wav_chunk_parses_with_stdlib_wave() -> None:
    pcm = struct.pack("<4800h", *([1000, -1000] * 2400))
    data = wav_chunk(pcm, 24000)
    params, frames = _read(data)
    assert params.nchannels == 1
    assert params.sampwidth == 2
    assert params.framerate == 24000
    assert params.nframes == 4800
    assert frames == pcm
    assert len(data) == 44 + len(pcm)
    (riff_size,) = struct.unpack_from("<I", data, 4)
    assert riff_size == len(data) - 8


def test_wav_chunk_stereo_and_empty() -> None:
    params, _ = _read(wav_chunk(b"\x00\x00" * 8, 16000, channels=2))
    assert (params.nchannels, params.framerate, params.nframes) == (2, 16000, 4)
    params, frames = _read(wav_chunk(b"", 24000))
    assert params.nframes == 0 and frames == b""


def test_wav_chunk_rejects_partial_frames() -> None:
    with pytest.raises(ValueError):
        wav_chunk(b"\x00\x00\x00", 24000)
    with pytest.raises(ValueError):
        wav_chunk(b"\x00\x00", 24000, channels=2)


def test_pcm_duration_ms() -> None:
    assert pcm_duration_ms(b"\x00\x00" * 24000, 24000) == 1000.0
    assert pcm_duration_ms(48000, 24000) == 1000.0
    assert pcm_duration_ms(b"\x00\x00" * 320, 16000, channels=2) == 10.0
