"""Recording of both sides of a chat on one timeline, as 16-bit mono WAV files in the data dir.

User audio (16 kHz, as heard by the listener) and assistant audio (the TTS rate, as sent) go to
separate tracks; each track is padded with silence so that sample N sits at N / rate seconds after
the chat started. Writing is plain local file appends; once the chat ends and `meta.json` is written,
`on_finished` hands the directory over (openevi/storage/spool.py uploads it to the recording store).
Reconstruction mixes the tracks later.

A track never holds more than `max_seconds` of audio (the longest a chat may last, plus a margin): a
client that sends audio faster than real time (10 s of 1 MB messages used to make an 834 MB
`user.wav`) fills its recording up to that bound, and the rest is not recorded; the chat goes on.
"""

from __future__ import annotations

import json
import logging
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("openevi.audio.recorder")

USER_TRACK = "user.wav"
ASSISTANT_TRACK = "assistant.wav"
META = "meta.json"


class _Track:
    """One WAV file, opened on the first audio: a text-only chat holds no file open."""

    def __init__(self, path: Path, rate: int, max_seconds: float | None = None) -> None:
        self.path = path
        self.rate = rate
        self.max_samples = int(max_seconds * rate) if max_seconds is not None else None
        self.samples = 0
        self._wav: wave.Wave_write | None = None
        self._failed = False
        self.full = False

    def _open(self) -> wave.Wave_write | None:
        if self._wav is None and not self._failed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - kept open for the chat's life
            except OSError as exc:
                # Out of file handles or disk: the chat goes on, only its recording is lost.
                self._failed = True
                log.error("cannot record %s: %s", self.path, exc)
                return None
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.rate)
            self._wav = wav
        return self._wav

    def write_at(self, pcm16: bytes, at_ms: int) -> None:
        """Append at `at_ms` (silence fills any gap; overlapping audio is appended after)."""
        target = at_ms * self.rate // 1000
        if self.max_samples is not None:
            target = min(target, self.max_samples)
            keep = max(0, self.max_samples - max(target, self.samples))
            if len(pcm16) // 2 > keep:
                if not self.full:
                    log.warning("recording %s reached its %d s bound; the rest is not recorded",
                                self.path, self.max_samples // self.rate)  # fmt: skip
                self.full = True
                pcm16 = pcm16[: 2 * keep]
        wav = self._open()
        if wav is None:
            return
        if target > self.samples:
            gap = target - self.samples
            wav.writeframesraw(b"\x00\x00" * gap)
            self.samples += gap
        wav.writeframesraw(pcm16)
        self.samples += len(pcm16) // 2

    @property
    def is_open(self) -> bool:
        return self._wav is not None

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


class ChatRecorder:
    """Writes a chat's two tracks under `recordings/<chat_id>/` as the chat goes."""

    def __init__(
        self,
        directory: Path,
        *,
        user_rate: int = 16000,
        assistant_rate: int = 24000,
        on_finished: Callable[[Path], None] | None = None,
        max_seconds: float | None = None,
    ) -> None:
        """`max_seconds`: the most audio a track holds (None: unbounded)."""
        self.directory = directory
        self._on_finished = on_finished
        self._user = _Track(directory / USER_TRACK, user_rate, max_seconds)
        self._assistant = _Track(directory / ASSISTANT_TRACK, assistant_rate, max_seconds)
        self._closed = False
        self.stored_bytes = 0  # the size of its files, once closed

    def user_audio(self, samples: np.ndarray, *, at_ms: int) -> None:
        """float32 samples at the user rate, heard at `at_ms` (ms since the chat started)."""
        if self._closed:
            return
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self._user.write_at(pcm, at_ms)

    def assistant_audio(self, pcm16: bytes, rate: int, *, at_ms: int) -> None:
        if self._closed or rate != self._assistant.rate:
            return
        self._assistant.write_at(pcm16, at_ms)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._user.close()
        self._assistant.close()
        meta = {"user_rate": self._user.rate, "assistant_rate": self._assistant.rate}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / META).write_text(json.dumps(meta))
        except OSError as exc:
            log.error("cannot finish the recording in %s: %s", self.directory, exc)
            return
        self.stored_bytes = sum(
            path.stat().st_size for path in (self._user.path, self._assistant.path) if path.is_file()
        )
        if self._on_finished is not None:
            self._on_finished(self.directory)

    @property
    def open_files(self) -> int:
        """Files this recorder holds open now (0 until audio flows)."""
        return int(self._user.is_open) + int(self._assistant.is_open)
