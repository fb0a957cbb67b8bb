"""Browser-like WebM/Opus chunks: one per slice of the clock, not of the byte count (opus is variable-rate)."""

from __future__ import annotations

import numpy as np

from openevi.audio.decode import AudioDecoder, Format
from tests.support.speech import RATE, encode_timesliced, speak


def test_timesliced_chunks_follow_the_clock_and_decode_as_they_come() -> None:
    speech = speak("What time does the museum open")
    silence = np.zeros(RATE * 2, dtype=np.float32)
    audio = np.concatenate([speech, silence])
    chunks = encode_timesliced(audio, slice_ms=100)
    # One chunk per 100 ms of audio, however many bytes each holds.
    assert len(chunks) == -(-audio.size // (RATE // 10))
    speech_slices = speech.size // (RATE // 10)
    spoken = [len(c) for c in chunks[1 : speech_slices - 1]]
    quiet = [len(c) for c in chunks[speech_slices + 2 : -1]]
    # Variable rate: a slice of silence costs a small fraction of a slice of speech, which is why
    # slicing the finished stream by bytes would send silence many times faster than real time.
    assert max(quiet) * 5 < min(spoken)
    decoder = AudioDecoder()
    decoded = [decoder.push(c) for c in chunks]
    decoded.append(decoder.flush())
    assert decoder.format is Format.WEBM
    # Audio comes out while the stream is still being recorded, not only at the end.
    assert sum(part.size for part in decoded[: len(chunks) // 2]) > speech.size // 2
    total = np.concatenate(decoded)
    assert abs(total.size - audio.size) < RATE // 10
