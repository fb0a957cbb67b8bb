"""The WORLD voice shift: pitch and formants move by their ratios, block by block without seams."""

from __future__ import annotations

import numpy as np
import pyworld

from openevi.speech.tts.voice_shift import VoiceShift, shift_blocks

RATE = 22_050


def _voiced(f0: float, seconds: float, *, gap_at: float | None = None) -> np.ndarray:
    """A vowel-like signal: harmonics of f0 under a fixed envelope, slightly vibrato, with an optional pause."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 3 * t))) / RATE
    audio = sum(np.sin(k * phase) / k for k in range(1, 25))
    audio = 0.2 * np.asarray(audio) / np.max(np.abs(audio))
    if gap_at is not None:
        start = int(gap_at * RATE)
        audio[start : start + RATE // 10] = 0.0
    return audio


def _median_f0(audio: np.ndarray) -> float:
    f0, _ = pyworld.harvest(audio, RATE, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    return float(np.median(f0[f0 > 0]))


def _centroid(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(audio.size, 1 / RATE)
    return float((spectrum * freqs).sum() / spectrum.sum())


def _joined(audio: np.ndarray, shift: VoiceShift) -> tuple[np.ndarray, list[np.ndarray], list[bool]]:
    pairs = list(shift_blocks(audio, RATE, shift))
    blocks = [block for block, _ in pairs]
    return np.concatenate(blocks), blocks, [last for _, last in pairs]


def test_identity_passes_the_audio_through_in_one_block() -> None:
    audio = _voiced(120.0, 1.0)
    joined, blocks, lasts = _joined(audio, VoiceShift())
    assert len(blocks) == 1 and lasts == [True]
    np.testing.assert_allclose(joined, audio)


def test_pitch_ratio_moves_the_f0() -> None:
    audio = _voiced(120.0, 2.0)
    up, _, _ = _joined(audio, VoiceShift(pitch=1.5))
    down, _, _ = _joined(audio, VoiceShift(pitch=0.75))
    assert abs(_median_f0(up) / _median_f0(audio) - 1.5) < 0.05
    assert abs(_median_f0(down) / _median_f0(audio) - 0.75) < 0.05


def test_formant_ratio_moves_the_spectrum_but_not_the_pitch() -> None:
    audio = _voiced(120.0, 2.0)
    brighter, _, _ = _joined(audio, VoiceShift(formant=1.2))
    assert abs(_median_f0(brighter) / _median_f0(audio) - 1.0) < 0.05
    assert _centroid(brighter) > 1.1 * _centroid(audio)


def test_a_sentence_comes_in_blocks_the_first_one_short_and_nothing_lost() -> None:
    audio = _voiced(130.0, 3.0, gap_at=1.0)
    joined, blocks, lasts = _joined(audio, VoiceShift(pitch=1.4, formant=1.1))
    assert joined.size == audio.size
    assert len(blocks) >= 2 and lasts == [False] * (len(blocks) - 1) + [True]
    assert blocks[0].size < 0.5 * RATE
    # no seam: around each join the level follows the same sentence transformed in one piece
    whole = np.concatenate([b for b, _ in shift_blocks(audio, RATE, VoiceShift(pitch=1.4, formant=1.1), first_s=10)])
    frame = RATE // 200
    for end in np.cumsum([b.size for b in blocks])[:-1]:
        for offset in range(-4, 4):
            at = slice(end + offset * frame, end + (offset + 1) * frame)
            ours, reference = np.sqrt(np.mean(joined[at] ** 2)), np.sqrt(np.mean(whole[at] ** 2))
            assert abs(ours - reference) <= 0.5 * reference + 1e-3
        assert np.max(np.abs(np.diff(joined[end - 220 : end + 220]))) < 0.1  # no click
