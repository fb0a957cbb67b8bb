"""Mix a chat's recorded tracks into one WAV file (user and assistant on one timeline)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import soxr

from openevi.audio.recorder import ASSISTANT_TRACK, META, USER_TRACK

OUTPUT_RATE = 24000
RECONSTRUCTION = "reconstruction.wav"


class ReconstructionError(Exception):
    """The recording is missing or unreadable."""


def _read(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        return np.zeros(0, dtype=np.float32), OUTPUT_RATE
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ReconstructionError(f"unreadable track {path.name}: {exc}") from exc
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, rate


def reconstruct(directory: Path) -> Path:
    """Write `reconstruction.wav` (24 kHz mono) from the tracks in `directory`; returns its path."""
    if not directory.is_dir() or not (directory / META).exists():
        raise ReconstructionError("no finished recording for this chat")
    json.loads((directory / META).read_text())
    tracks = []
    for name in (USER_TRACK, ASSISTANT_TRACK):
        samples, rate = _read(directory / name)
        if samples.size and rate != OUTPUT_RATE:
            samples = soxr.resample(samples, rate, OUTPUT_RATE).astype(np.float32)
        tracks.append(samples)
    length = max((t.size for t in tracks), default=0)
    mix = np.zeros(length, dtype=np.float32)
    for track in tracks:
        mix[: track.size] += track
    pcm = (np.clip(mix, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    out = directory / RECONSTRUCTION
    tmp = out.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(OUTPUT_RATE)
        wav.writeframes(pcm)
    tmp.replace(out)  # readers never see a half-written file
    return out
