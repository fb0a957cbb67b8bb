"""espeak-ng speech synthesis: the fallback voice for languages no shipped neural voice speaks.

espeak-ng (Debian package `espeak-ng`, GPL-3, run as a separate program) speaks about a hundred
languages by formant synthesis: intelligible but plainly robotic. openevi uses it only to answer a user
in a language none of its neural voices speaks (docs/voices.md, "Replies in the user's language").
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import subprocess
from collections.abc import AsyncGenerator
from functools import lru_cache

import numpy as np
import soxr

from openevi.speech.tts.base import TTSError
from openevi.speech.voices import Voice

__all__ = ["ENGINE", "EspeakTTS", "espeak_voice_name"]

ENGINE = "espeak-ng"
OUTPUT_RATE = 24_000
_HEADER = 44  # espeak-ng --stdout writes a canonical 44-byte WAV header (sizes unset: it streams)
# Whisper's language codes where espeak-ng names the language differently.
_ESPEAK_NAMES = {"zh": "cmn", "jw": "id", "nn": "nb", "no": "nb"}


@lru_cache(maxsize=1)
def _installed_languages() -> frozenset[str]:
    """Language names espeak-ng knows here (empty when it is not installed)."""
    binary = shutil.which(ENGINE)
    if binary is None:
        return frozenset()
    try:
        listing = subprocess.run([binary, "--voices"], check=True, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1)


def espeak_voice_name(language: str) -> str | None:
    """espeak-ng's voice for an ISO 639-1 code (`fr`, `it`, `ja`), or None when it has none (or is absent)."""
    code = language.lower()
    name = _ESPEAK_NAMES.get(code, code)
    installed = _installed_languages()
    if name in installed or any(known.startswith(f"{name}-") for known in installed):
        return name
    return None


def _pcm(wav: bytes) -> tuple[np.ndarray, int]:
    if len(wav) < _HEADER or wav[:4] != b"RIFF":
        raise TTSError("espeak-ng wrote no WAV audio")
    rate = struct.unpack_from("<I", wav, 24)[0]
    samples = np.frombuffer(wav[_HEADER : _HEADER + (len(wav) - _HEADER) // 2 * 2], dtype="<i2")
    return samples.astype(np.float32) / 32768.0, rate


class EspeakTTS:
    """espeak-ng behind the TextToSpeech contract: one 24 kHz chunk per call. `voice.model` is the espeak
    voice (`fr`, `it+f3` for a female variant)."""

    sample_rate: int = OUTPUT_RATE

    async def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        """Stream int16 mono PCM at 24 kHz for `text`."""
        if voice.engine != ENGINE:
            raise TTSError(f"Voice {voice.name!r} is for engine {voice.engine!r}, not {ENGINE}")
        if not text.strip():
            return
        binary = shutil.which(ENGINE)
        if binary is None:
            raise TTSError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        # "--" ends the options: the text is the model's reply and may start with a dash.
        process = await asyncio.create_subprocess_exec(
            binary, "--stdout", "-v", voice.model, "--", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            wav, error = await process.communicate()
        finally:
            if process.returncode is None:  # cancelled while it ran
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.returncode != 0:
            raise TTSError(f"espeak-ng failed ({process.returncode}): {error.decode(errors='replace').strip()}")
        audio, rate = _pcm(wav)
        pcm = soxr.resample(audio, rate, OUTPUT_RATE)
        if pcm.size:
            yield np.clip(pcm * 32767.0, -32767, 32767).astype("<i2").tobytes()

    async def aclose(self) -> None:
        """Nothing to release: each synthesis is its own process."""
