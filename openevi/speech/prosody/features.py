"""Voice features for the emotion model, in numpy only: pitch, loudness, spectral tilt, voice quality, tempo.

One pass over 10 ms hops of 16 kHz mono audio:

- **pitch**: YIN (de Cheveigné & Kawahara, 2002) on 25 ms windows, 55-600 Hz, cumulative-mean-normalised
  difference computed for all frames at once through FFT cross-correlation; a frame is voiced when its
  YIN dip is below `VOICING_THRESHOLD` and it is within 35 dB of the loudest frame;
- **loudness**: A-weighted power of each frame raised to 0.3 (Stevens' power law: +10 dB ≈ twice as loud);
- **spectral tilt** of voiced frames: alpha ratio (energy 1-5 kHz over 50 Hz-1 kHz, dB) and Hammarberg
  index (strongest bin 0-2 kHz over strongest bin 2-5 kHz, dB), as defined for eGeMAPS (Eyben et al. 2016);
- **jitter / shimmer**: glottal cycles are marked by peak picking guided by the pitch track; local jitter
  is the mean absolute difference of consecutive periods over the mean period, local shimmer the mean
  absolute dB ratio of consecutive cycle amplitudes (the Praat definitions);
- **HNR**: from the normalised autocorrelation r at the pitch period, 10·log10(r / (1 - r)) (Boersma 1993);
- **tempo**: voiced segments per second and syllable-like loudness peaks per second; pause ratio.

Every value is finite for any input (silence, noise, clipping, clips shorter than one window): measures
that need voiced frames are 0.0 when there are none, and `voiced_s` then says so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_NAMES", "VOICED_FEATURES", "extract", "pause_ratio", "yin"]

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms
WINDOW = 400  # 25 ms: two periods at 80 Hz, enough for YIN's difference function
F0_MIN, F0_MAX = 55.0, 600.0
VOICING_THRESHOLD = 0.25  # YIN dip: 0.1 in the paper is for clean signals; running speech needs more slack
VOICED_RANGE_DB = 35.0  # frames quieter than the loudest by more than this are not voiced (breath, reverb tails)
SILENCE_DBFS = -55.0
NFFT = 1024  # >= WINDOW + max lag, so circular correlation does not wrap

FEATURE_NAMES: tuple[str, ...] = (
    "f0_mean",  # semitones re 27.5 Hz, mean over voiced frames
    "f0_range",  # semitones, 80th minus 20th percentile over voiced frames
    "loudness",  # 80th percentile of frame loudness (arbitrary units, ratio scale)
    "alpha_ratio",  # dB, voiced frames
    "hammarberg",  # dB, voiced frames
    "jitter",  # local jitter, fraction
    "shimmer",  # local shimmer, dB
    "hnr",  # dB, voiced frames
    "voiced_per_s",  # voiced segments per second of input
    "peaks_per_s",  # loudness peaks (syllable nuclei) per second of input
    "pause_ratio",  # share of the speech span in pauses >= 160 ms
    "voiced_s",  # seconds of voiced frames
)


# Measured on voiced frames only: meaningless (reported as 0.0) when `voiced_s` is 0.
VOICED_FEATURES: frozenset[str] = frozenset(
    {"f0_mean", "f0_range", "alpha_ratio", "hammarberg", "jitter", "shimmer", "hnr"}
)


def _frames(audio: np.ndarray, length: int) -> np.ndarray:
    """(n_frames, length) strided view, one frame per hop, zero-padded at the end."""
    n = max(1, int(np.ceil(len(audio) / HOP)))
    padded = np.zeros((n - 1) * HOP + length, dtype=np.float64)
    padded[: len(audio)] = audio
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::HOP]


def yin(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Per 10 ms hop: (f0 in Hz, YIN dip in [0, 1+]); f0 is a candidate even where the dip says unvoiced."""
    lag_min = int(sample_rate / F0_MAX)
    lag_max = int(np.ceil(sample_rate / F0_MIN))
    frames = _frames(audio, WINDOW + lag_max)
    # d(τ) = Σ x_j² + Σ x_{j+τ}² - 2 Σ x_j x_{j+τ}, all lags of all frames through one FFT product.
    head = np.fft.rfft(frames[:, :WINDOW], NFFT)
    full = np.fft.rfft(frames, NFFT)
    cross = np.fft.irfft(np.conj(head) * full, NFFT)[:, : lag_max + 1]
    energy = np.cumsum(np.pad(frames * frames, ((0, 0), (1, 0))), axis=1)
    e0 = energy[:, WINDOW]
    etau = energy[:, WINDOW : WINDOW + lag_max + 1] - energy[:, : lag_max + 1]
    diff = np.maximum(e0[:, None] + etau - 2.0 * cross, 0.0)
    # Cumulative-mean normalisation removes the bias towards lag 0 and gives a level-free dip.
    lags = np.arange(lag_max + 1)
    cum = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * lags[1:] / np.maximum(cum, 1e-12)
    search = cmnd[:, lag_min:lag_max]
    # First dip below the threshold, then down to its local minimum (the paper's "absolute threshold").
    below = search < VOICING_THRESHOLD
    first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
    rising = np.zeros_like(below)
    rising[:, :-1] = search[:, 1:] >= search[:, :-1]
    rising[:, -1] = True
    after = np.arange(search.shape[1])[None, :] >= first[:, None]
    best = (rising & after).argmax(axis=1)
    # Parabolic interpolation of the dip for sub-sample periods (1 sample is 1.25 % of a 200 Hz period).
    rows = np.arange(len(search))
    left = search[rows, np.maximum(best - 1, 0)]
    mid = search[rows, best]
    right = search[rows, np.minimum(best + 1, search.shape[1] - 1)]
    curvature = left - 2.0 * mid + right
    shift = np.where(curvature > 1e-12, 0.5 * (left - right) / np.where(curvature > 1e-12, curvature, 1.0), 0.0)
    period = lag_min + best + np.clip(shift, -0.5, 0.5)
    return sample_rate / period, mid


def _lowpass(cutoff: float, taps: int = 33) -> np.ndarray:
    """Hann-windowed sinc low-pass FIR (unit DC gain), cutoff in Hz at SAMPLE_RATE."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff / SAMPLE_RATE * n) * np.hanning(taps)
    return np.asarray(h / h.sum())


_LOWPASS = _lowpass(1000.0)


def _a_weighting(freqs: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting as a power gain (≈ 1 at 1 kHz): the ear's lower sensitivity at the extremes."""
    f2 = freqs * freqs
    ra = (12194.0**2 * f2 * f2) / ((f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2))
    return np.asarray((ra * 10 ** (2.0 / 20)) ** 2)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def pause_ratio(frame_db: np.ndarray) -> float:
    """Share of the speech span (first to last active frame) in quiet runs of at least 160 ms."""
    threshold = max(float(np.percentile(frame_db, 95)) - 30.0, SILENCE_DBFS)
    active = np.flatnonzero(frame_db > threshold)
    if len(active) < 2:
        return 0.0
    quiet = frame_db[active[0] : active[-1] + 1] <= threshold
    starts, ends = _runs(quiet)
    lengths = ends - starts
    # Stop closures and short dips are not pauses: only runs of >= 16 hops (160 ms) count.
    return float(lengths[lengths >= 16].sum() / len(quiet))


def _cycles(
    audio: np.ndarray, f0: np.ndarray, starts: np.ndarray, ends: np.ndarray, sample_rate: int
) -> list[np.ndarray]:
    """Glottal-cycle marks (sample positions, sub-sample) per voiced segment, by pitch-guided peak picking."""
    marks: list[np.ndarray] = []
    n = len(audio)
    for s, e in zip(starts, ends, strict=True):
        if e - s < 3:  # fewer than 30 ms: not enough cycles to compare
            continue
        lo, hi = s * HOP, min(e * HOP + WINDOW // 2, n)
        period0 = sample_rate / f0[s]
        first = lo + int(np.argmax(audio[lo : lo + int(period0) + 1]))
        points = [float(first)]
        pos = first
        while True:
            period = sample_rate / f0[min(pos // HOP, e - 1)]
            a, b = pos + int(0.8 * period), pos + int(np.ceil(1.2 * period)) + 1
            if b >= hi:
                break
            peak = a + int(np.argmax(audio[a:b]))
            # Parabolic refinement of the peak position: periods are only ~80 samples at 200 Hz.
            y0, y1, y2 = audio[peak - 1], audio[peak], audio[peak + 1]
            c = y0 - 2.0 * y1 + y2
            # Clipped: a peak at the edge of the search window is not a local maximum.
            points.append(peak + (float(np.clip(0.5 * (y0 - y2) / c, -0.5, 0.5)) if c < 0 else 0.0))
            pos = peak
        if len(points) >= 3:
            marks.append(np.asarray(points))
    return marks


def _perturbation(audio: np.ndarray, marks: list[np.ndarray]) -> tuple[float, float]:
    """(local jitter, local shimmer in dB) over consecutive cycles; implausible period jumps are skipped."""
    jit_num = jit_den = 0.0
    shim: list[np.ndarray] = []
    for points in marks:
        periods = np.diff(points)
        idx = points.astype(np.int64)
        # Peak-to-peak amplitude of each cycle, all cycles at once.
        amp = np.maximum.reduceat(audio[idx[0] : idx[-1]], idx[:-1] - idx[0]) - np.minimum.reduceat(
            audio[idx[0] : idx[-1]], idx[:-1] - idx[0]
        )
        ratio = periods[1:] / periods[:-1]
        ok = (ratio > 1 / 1.3) & (ratio < 1.3)  # Praat's "maximum period factor": larger jumps are tracking errors
        jit_num += float(np.abs(np.diff(periods))[ok].sum())
        jit_den += float(periods[1:][ok].sum())
        good = (amp[1:] > 1e-6) & (amp[:-1] > 1e-6) & ok
        shim.append(np.abs(20.0 * np.log10(amp[1:][good] / amp[:-1][good])))
    jitter = jit_num / jit_den if jit_den > 0 else 0.0
    all_shim = np.concatenate(shim) if shim else np.zeros(0)
    return jitter, float(all_shim.mean()) if len(all_shim) else 0.0


def extract(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """All FEATURE_NAMES for float mono audio at `sample_rate` (16 kHz expected); every value finite."""
    audio = np.clip(np.nan_to_num(np.asarray(audio, dtype=np.float64).reshape(-1)), -1.0, 1.0)
    seconds = max(len(audio) / sample_rate, 1e-3)
    f0, dip = yin(audio, sample_rate)
    n = len(f0)

    # Frame spectra (Hann, 25 ms) for loudness and spectral tilt.
    frames = _frames(audio, WINDOW)[:n]
    power = np.abs(np.fft.rfft(frames * np.hanning(WINDOW), 512)) ** 2
    freqs = np.fft.rfftfreq(512, 1.0 / sample_rate)
    frame_db = 10.0 * np.log10(np.maximum((frames * frames).mean(axis=1), 1e-12))
    weighted = power @ _a_weighting(freqs) / WINDOW
    loud = np.maximum(weighted, 0.0) ** 0.3

    voiced = (dip < VOICING_THRESHOLD) & (frame_db > max(frame_db.max() - VOICED_RANGE_DB, SILENCE_DBFS))
    # Bridge 10-20 ms unvoiced gaps: they are tracking dropouts inside a vowel, not consonants.
    gap_starts, gap_ends = _runs(~voiced)
    for s, e in zip(gap_starts, gap_ends, strict=True):
        if e - s <= 2 and s > 0 and e < n:
            voiced[s:e] = True
    starts, ends = _runs(voiced)
    # A voiced segment is at least 2 hops: single frames are often noise that happens to look periodic.
    long_enough = ends - starts >= 2
    starts, ends = starts[long_enough], ends[long_enough]
    voiced = np.zeros(n, dtype=bool)
    for s, e in zip(starts, ends, strict=True):
        voiced[s:e] = True

    out = dict.fromkeys(FEATURE_NAMES, 0.0)
    out["loudness"] = float(np.percentile(loud, 80))
    out["pause_ratio"] = pause_ratio(frame_db)
    out["voiced_per_s"] = len(starts) / seconds
    out["voiced_s"] = float(voiced.sum()) * HOP / sample_rate
    out["peaks_per_s"] = _loudness_peaks(loud, frame_db) / seconds
    if voiced.sum() < 3:
        out["voiced_s"] = 0.0  # too little to measure pitch or voice quality: report none
        return out

    semitones = 12.0 * np.log2(f0[voiced] / 27.5)
    out["f0_mean"] = float(semitones.mean())
    p20, p80 = np.percentile(semitones, [20, 80])
    out["f0_range"] = float(p80 - p20)

    vp = power[voiced] + 1e-12
    low = vp[:, (freqs >= 50) & (freqs < 1000)].sum(axis=1)
    high = vp[:, (freqs >= 1000) & (freqs < 5000)].sum(axis=1)
    out["alpha_ratio"] = float(np.mean(10.0 * np.log10(high / low)))
    peak_low = vp[:, freqs < 2000].max(axis=1)
    peak_high = vp[:, (freqs >= 2000) & (freqs < 5000)].max(axis=1)
    out["hammarberg"] = float(np.mean(10.0 * np.log10(peak_low / peak_high)))

    # YIN's d'(τ) is close to 1 - r(τ) for a stationary frame, r the normalised autocorrelation.
    r = np.clip(1.0 - dip[voiced], 1e-3, 1.0 - 1e-4)
    out["hnr"] = float(np.mean(10.0 * np.log10(r / (1.0 - r))))

    # Cycles are marked on a low-passed copy: formant ripple otherwise moves the peak between cycles.
    smooth = np.convolve(audio, _LOWPASS, mode="same")
    out["jitter"], out["shimmer"] = _perturbation(audio, _cycles(smooth, f0, starts, ends, sample_rate))
    return out


def _loudness_peaks(loud: np.ndarray, frame_db: np.ndarray) -> int:
    """Syllable nuclei: maxima of the smoothed loudness contour that rise >= 2 dB above the dip before them.

    After de Jong & Wempe (2009), with loudness for intensity; peaks more than 25 dB below the loudest
    frame are ignored (background noise).
    """
    if len(loud) < 3:
        return 0
    # 50 ms moving average: one peak per syllable, not per pitch or formant ripple.
    smooth = np.convolve(loud, np.ones(5) / 5, mode="same")
    db = 10.0 / 0.3 * np.log10(np.maximum(smooth, 1e-12))  # back to dB, where the 2 dB rule is stated
    floor = max(float(frame_db.max()) - 25.0, SILENCE_DBFS)
    # Loudness dB and frame dB differ by a constant (weighting), so compare relative levels.
    loud_floor = float(db.max()) - (float(frame_db.max()) - floor)
    candidates = np.flatnonzero((db[1:-1] > db[:-2]) & (db[1:-1] >= db[2:]) & (db[1:-1] > loud_floor)) + 1
    count = 0
    last = 0
    for peak in candidates.tolist():
        dip = float(db[last : peak + 1].min())
        if db[peak] - dip >= 2.0:
            count += 1
            last = peak
        elif count and db[peak] > db[last]:
            last = peak  # a higher peak on the same syllable: measure the next dip from here
    return count
