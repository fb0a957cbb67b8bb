"""WAV framing for PCM chunks: EVI's audio_output messages each carry one complete WAV file."""

from __future__ import annotations

import struct

_SAMPLE_WIDTH = 2  # int16
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def wav_chunk(pcm: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap little-endian int16 PCM in a 44-byte RIFF/WAVE header with exact sizes."""
    if sample_rate <= 0 or channels <= 0:
        raise ValueError("sample_rate and channels must be positive")
    if len(pcm) % (_SAMPLE_WIDTH * channels):
        raise ValueError("pcm length is not a whole number of int16 frames")
    block_align = _SAMPLE_WIDTH * channels
    header = _HEADER.pack(
        b"RIFF",
        _HEADER.size - 8 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size for PCM
        1,  # WAVE_FORMAT_PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        _SAMPLE_WIDTH * 8,
        b"data",
        len(pcm),
    )
    return header + pcm


def pcm_duration_ms(pcm: bytes | int, sample_rate: int, channels: int = 1) -> float:
    """Duration of int16 PCM (bytes, or a byte count) in milliseconds."""
    size = pcm if isinstance(pcm, int) else len(pcm)
    return size / (_SAMPLE_WIDTH * channels * sample_rate) * 1000.0
