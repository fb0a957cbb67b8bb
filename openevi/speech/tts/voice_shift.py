"""New voices from a shipped one: the WORLD vocoder moves its pitch and its formants.

Only one English neural voice ships in a registry package (Joe, docs/voices.md). WORLD (`pyworld`)
splits speech into a fundamental frequency (F0), a spectral envelope and an aperiodicity, so the
pitch (F0 ratio) and the vocal tract size (formant ratio: the envelope stretched along frequency)
can be changed independently and resynthesized: a higher pitch and formants reads as a woman's
voice, a lower one as a deeper man's voice. Cost: ~0.03 CPU seconds per second of speech.

A sentence is transformed block by block (blocks end in the quietest frame near their target
length and are cross-faded), so the first block can be played while the rest is still worked on:
first audio waits for ~0.3 s of speech to be transformed, not for the whole sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyworld

__all__ = ["VoiceShift", "shift_blocks"]

_FRAME_MS = 10.0  # WORLD frame period: 5 ms costs ~2.5x as much for no difference Whisper hears
_F0_FLOOR, _F0_CEIL = 60.0, 500.0
_DIO_SPEED = 2  # dio's internal down-sampling: its F0 is refined by stonemask anyway
_CONTEXT_S = 0.08  # audio analysed on either side of a block so its edges are synthesized as in the whole
_CROSSFADE_S = 0.01
_SNAP_S = 0.08  # how far a block end may move to find a quiet frame
_MIN_LAST_S = 0.3  # a shorter remainder is joined to the block before it
_F0_WINDOW = 9
# F0 excursions are scaled around a fixed level, not each block's own mean, so blocks join without a
# jump: Joe's typical F0 (the model every voice is made from).
RANGE_ANCHOR_HZ = 150.0


@dataclass(frozen=True)
class VoiceShift:
    """How a voice differs from the one it is made from: ratios of its F0 and of its formant frequencies."""

    pitch: float = 1.0
    formant: float = 1.0
    pitch_range: float = 1.0
    """Ratio of the F0 excursions around RANGE_ANCHOR_HZ (applied before `pitch`)."""

    @property
    def identity(self) -> bool:
        return self.pitch == 1.0 and self.formant == 1.0 and self.pitch_range == 1.0


def _warp(envelope: np.ndarray, ratio: float) -> np.ndarray:
    """Stretch each frame's envelope along frequency by `ratio` (above 1: formants move up)."""
    bins = envelope.shape[1]
    source = np.clip(np.arange(bins) / ratio, 0, bins - 1)
    low = np.floor(source).astype(np.intp)
    high = np.minimum(low + 1, bins - 1)
    weight = source - low
    return np.ascontiguousarray(envelope[:, low] * (1 - weight) + envelope[:, high] * weight)


def _smooth_octaves(f0: np.ndarray) -> np.ndarray:
    """Pull isolated octave jumps of the F0 track back to their neighbours' level.

    dio now and then reads a frame at twice or half its pitch; resynthesized, that is an audible
    chirp. A voiced frame more than ~0.6 octave from the median of the 9 voiced frames around it
    takes that median instead.
    """
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size < 3:
        return f0
    values = f0[voiced]
    padded = np.pad(values, _F0_WINDOW // 2, mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(padded, _F0_WINDOW), axis=1)
    ratio = values / local
    out = f0.copy()
    out[voiced] = np.where((ratio > 1.5) | (ratio < 1 / 1.5), local, values)
    return out


def _transform(audio: np.ndarray, rate: int, shift: VoiceShift) -> np.ndarray:
    """The whole of `audio` (float64) resynthesized with the shift; same length as the input."""
    f0, times = pyworld.dio(audio, rate, f0_floor=_F0_FLOOR, f0_ceil=_F0_CEIL, frame_period=_FRAME_MS, speed=_DIO_SPEED)
    f0 = _smooth_octaves(pyworld.stonemask(audio, f0, times, rate))
    fft_size = pyworld.get_cheaptrick_fft_size(rate, _F0_FLOOR)
    envelope = pyworld.cheaptrick(audio, f0, times, rate, f0_floor=_F0_FLOOR, fft_size=fft_size)
    aperiodicity = pyworld.d4c(audio, f0, times, rate, fft_size=fft_size)
    if shift.formant != 1.0:
        envelope = _warp(envelope, shift.formant)
        aperiodicity = _warp(aperiodicity, shift.formant)
    if shift.pitch_range != 1.0:
        voiced = f0 > 0
        f0[voiced] = RANGE_ANCHOR_HZ * (f0[voiced] / RANGE_ANCHOR_HZ) ** shift.pitch_range
    out: np.ndarray = pyworld.synthesize(
        np.ascontiguousarray(f0 * shift.pitch), envelope, aperiodicity, rate, _FRAME_MS
    )
    if out.size < audio.size:
        out = np.pad(out, (0, audio.size - out.size))
    return out[: audio.size]


def _block_ends(audio: np.ndarray, rate: int, first_s: float, block_s: float) -> list[int]:
    """Sample indices where blocks end: near the target lengths, moved to the quietest 10 ms frame."""
    frame = max(1, rate // 100)
    frames = audio.size // frame
    if frames == 0:
        return [audio.size]
    energy = np.square(audio[: frames * frame]).reshape(frames, frame).sum(axis=1)
    ends: list[int] = []
    target = first_s
    snap = int(_SNAP_S * 100)
    while (target + _MIN_LAST_S) * rate < audio.size:
        centre = int(target * 100)
        low, high = max(centre - snap, 1), min(centre + snap, frames - 1)
        if low >= high:
            break
        quietest = low + int(np.argmin(energy[low:high]))
        ends.append(quietest * frame)
        target = quietest / 100 + block_s
    ends.append(audio.size)
    return ends


def shift_blocks(
    audio: np.ndarray, rate: int, shift: VoiceShift, *, first_s: float = 0.3, block_s: float = 1.5
) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield `audio` (float, mono) with the shift applied, block by block, each with "is it the last".

    The blocks join seamlessly; the first is about `first_s` long so it is ready soon, later ones
    about `block_s`.
    """
    signal = np.asarray(audio, dtype=np.float64)
    if shift.identity or signal.size == 0:
        yield signal, True
        return
    context = int(_CONTEXT_S * rate)
    fade = int(_CROSSFADE_S * rate)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    start = 0
    tail: np.ndarray | None = None  # the previous block's resynthesis just past its end, to fade from
    ends = _block_ends(signal, rate, first_s, block_s)
    for end in ends:
        lo, hi = max(0, start - context), min(signal.size, end + context)
        out = _transform(signal[lo:hi], rate, shift)
        block = out[start - lo : end - lo].copy()
        if tail is not None:
            n = min(fade, tail.size, block.size)
            block[:n] = tail[:n] * (1 - ramp[:n]) + block[:n] * ramp[:n]
        tail = out[end - lo : end - lo + fade]
        start = end
        yield block, end == ends[-1]
