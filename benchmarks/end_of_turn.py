"""End of turn on real human speech: silence-only vs Smart Turn (and Pipecat 1.14's own way).

The set (built from the real recordings of tests/support/real_speech.py): each utterance whole
("complete") and cut off mid-phrase at a word boundary ("cut-off": the boundary nearest the middle
whose word carries no punctuation in Whisper's transcript; word times from faster-whisper), each
trimmed of its own trailing silence, followed by 4 s of near-silence (-80 dBFS noise).

Each clip is driven through openevi's TurnDetector frame by frame with the real Silero VAD and the
real model, on the audio's own timeline: a model check started at a frame answers after its measured
compute time (the verdict is applied at the first frame boundary after that), so no wall clock
paces the run. Measured per detector:
- complete: the gap from the last voiced sample to the end of the final turn (median, p95), and
  how many clips had a turn end before their speech was over (a premature cut inside the utterance);
- cut-off: the share whose turn ends within 1 s of the last voiced sample (a false cut-in: the user
  was mid-sentence).

Detectors: `silence` (the config's end_of_turn_silence_ms, 800 ms by default), `smart-turn` (the
model's verdict: complete → OPENEVI_TURN_MIN_SILENCE_MS, unfinished → up to
OPENEVI_TURN_MAX_SILENCE_MS), and two combinations measured to decide whether they help:
`smart-turn+text` (the speculative transcript, once ready, overrides the verdict: ending in a
conjunction/article/preposition → unfinished; ending in sentence punctuation → complete) and
`smart-turn+pitch` (a final pitch fall of ≥ 3 semitones below the turn's median turns an
"unfinished" verdict into complete; a final rise of ≥ 2 semitones turns "complete" into unfinished).
With `--pipecat-python`, the same WAV files go through benchmarks/end_of_turn_pipecat.py in that
interpreter (pipecat-ai==1.14.0: LocalSmartTurnAnalyzerV3, Silero VAD with stop_secs 0.2).

Run: .venv/bin/python -m benchmarks.end_of_turn [--pipecat-python /tmp/pipecat-venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from openevi.chat.turn_detection import EndOfTurnRule, SilenceStarted, TurnDetector, TurnEnded
from openevi.schemas.config_defaults import TURN_DETECTION
from openevi.speech.asr.whisper import WhisperASR, assemble_packaged_model, default_cache_dir
from openevi.speech.prosody.features import yin
from openevi.speech.turn.smart_turn import SmartTurnModel
from openevi.speech.vad.silero import FRAME_SAMPLES, SileroVAD

RATE = 16_000
FRAME_MS = 1000 * FRAME_SAMPLES / RATE
LEAD_S = 0.5
TRAIL_S = 4.0
CUT_IN_MS = 1000.0
MIN_SILENCE_MS = 200.0
MAX_SILENCE_MS = 2000.0
PIPECAT_SCRIPT = Path(__file__).with_name("end_of_turn_pipecat.py")

# Words after which an English phrase cannot end: conjunctions, articles, prepositions, possessives,
# auxiliaries. A transcript ending in one of them (without sentence punctuation) is mid-phrase.
# fmt: off
MID_PHRASE_WORDS = frozenset((
    "and", "but", "or", "nor", "so", "because", "if", "when", "while", "although", "though", "than", "that",
    "which", "who", "whose", "whom", "the", "a", "an", "this", "these", "those", "my", "your", "our",
    "their", "his", "her", "its", "to", "of", "in", "on", "at", "for", "with", "from", "by", "about", "into",
    "onto", "over", "under", "through", "between", "after", "before", "is", "are", "was", "were", "be",
    "been", "am", "will", "would", "can", "could", "should", "shall", "may", "might", "must", "do", "does",
    "did", "has", "have", "had", "not", "no", "very",
))
# fmt: on


@dataclass
class Clip:
    name: str
    kind: str  # "complete" | "cut-off"
    audio: np.ndarray  # 16 kHz float32, lead-in + speech + trailing near-silence
    voiced_end_ms: float
    text: str


@dataclass
class Check:
    """What the model (and the combinations) said about one silence, and when each answer was ready."""

    probability: float
    model_ms: float
    transcript: str = ""
    transcript_ms: float = 0.0
    pitch_drop_st: float | None = None
    pitch_ms: float = 0.0


@dataclass
class Outcome:
    turn_ends_ms: list[float] = field(default_factory=list)
    checks_ms: list[float] = field(default_factory=list)


# --- the set -------------------------------------------------------------------------------------


def _voiced_bounds(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of 10 ms windows within 35 dB of the loudest one."""
    hop = RATE // 100
    n = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = np.flatnonzero(db > db.max() - 35)
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def _framed(speech: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Lead-in + speech (peak-normalised, 10 ms fades) + trailing near-silence; the voiced end in ms."""
    begin, end = _voiced_bounds(speech)
    speech = speech[begin:end].astype(np.float32)
    speech = speech * (0.7 / max(float(np.abs(speech).max()), 1e-6))
    fade = np.linspace(0.0, 1.0, RATE // 100, dtype=np.float32)
    speech[: fade.size] *= fade
    speech[-fade.size :] *= fade[::-1]
    lead = int(LEAD_S * RATE)
    trail = int(TRAIL_S * RATE)
    audio = np.concatenate((np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)))
    audio += rng.normal(0.0, 1e-4, audio.size).astype(np.float32)
    audio = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.float32) / 32768.0  # what the WAV holds
    return audio, 1000.0 * (lead + speech.size) / RATE


def build_set(recordings: Iterable[tuple[str, np.ndarray]], whisper_dir: Path) -> list[Clip]:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(whisper_dir), device="cpu", compute_type="int8", cpu_threads=2)
    rng = np.random.default_rng(16)
    clips: list[Clip] = []
    for name, audio in recordings:
        segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1)
        words = [w for s in segments for w in (s.words or [])]
        text = " ".join(w.word.strip() for w in words)
        if len(words) < 4:
            continue  # too short to cut mid-phrase
        complete, voiced_ms = _framed(audio, rng)
        clips.append(Clip(name, "complete", complete, voiced_ms, text))
        candidates = [k for k in range(2, len(words) - 1) if not re.search(r"[,.;:?!]$", words[k - 1].word.strip())]
        if not candidates:
            continue
        k = min(candidates, key=lambda k: abs(k - len(words) / 2))
        cut = int(RATE * (words[k - 1].end + max(0.0, words[k].start - words[k - 1].end) / 2))
        cut_audio, cut_ms = _framed(audio[:cut], rng)
        kept = " ".join(w.word.strip() for w in words[:k])
        clips.append(Clip(name, "cut-off", cut_audio, cut_ms, kept + " …"))
    return clips


# --- combinations measured against the model alone ----------------------------------------------


def text_verdict(transcript: str) -> bool | None:
    """Complete (True), mid-phrase (False), or no opinion, from the words so far."""
    text = transcript.strip()
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return None
    if words[-1] in MID_PHRASE_WORDS and not re.search(r"[.?!]$", text):
        return False
    if re.search(r"[.?!]$", text) and words[-1] not in MID_PHRASE_WORDS:
        return True
    return None


def final_pitch_drop(audio: np.ndarray) -> float | None:
    """Semitones from the turn's median pitch to the median of its last 300 ms of voicing."""
    f0, dip = yin(audio, RATE)
    voiced = np.flatnonzero((dip < 0.25) & (f0 > 0))
    if voiced.size < 20:
        return None
    semitones = 12.0 * np.log2(f0[voiced] / 27.5)
    tail = semitones[voiced >= voiced[-1] - 30]  # hops are 10 ms
    return float(np.median(tail) - np.median(semitones))


Combine = Callable[[bool, Check], tuple[bool, float] | None]
"""Given the model's verdict and the check: a revised verdict and when it is ready, or None."""


def _by_text(complete: bool, check: Check) -> tuple[bool, float] | None:
    said = text_verdict(check.transcript)
    return None if said is None or said == complete else (said, check.transcript_ms)


def _by_pitch(complete: bool, check: Check) -> tuple[bool, float] | None:
    drop = check.pitch_drop_st
    if drop is None:
        return None
    if not complete and drop <= -3.0:
        return True, check.model_ms + check.pitch_ms
    if complete and drop >= 2.0:
        return False, check.model_ms + check.pitch_ms
    return None


# --- openevi's side ------------------------------------------------------------------------------


class _CachedModel:
    """The rule needs a model; the benchmark applies verdicts itself (at their measured times)."""

    sample_rate = RATE

    async def probability(self, audio: np.ndarray) -> float:
        raise NotImplementedError

    async def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def drive(
    clip: Clip,
    probabilities: list[float],
    judge: Callable[[SilenceStarted], Check] | None,
    combine: Combine | None = None,
) -> Outcome:
    """One clip through the TurnDetector on the audio timeline; verdicts land when they are ready."""
    rule = EndOfTurnRule(_CachedModel(), MIN_SILENCE_MS, MAX_SILENCE_MS) if judge is not None else None
    detector = TurnDetector(
        threshold=TURN_DETECTION["speech_detection_threshold"],
        prefix_padding_ms=TURN_DETECTION["prefix_padding_ms"],
        end_of_turn_silence_ms=TURN_DETECTION["end_of_turn_silence_ms"],
        rule=rule,
    )
    outcome = Outcome()
    pending: list[tuple[float, float, float]] = []  # (ready at ms, silence at ms, P(complete))
    for i, probability in enumerate(probabilities):
        now_ms = i * FRAME_MS
        for item in sorted(p for p in pending if p[0] <= now_ms):
            pending.remove(item)
            if [e for e in detector.verdict(item[1], item[2]) if isinstance(e, TurnEnded)]:
                outcome.turn_ends_ms.append(now_ms)
        frame = clip.audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        for event in detector.push(frame, probability):
            if isinstance(event, TurnEnded):
                outcome.turn_ends_ms.append(now_ms + FRAME_MS)
            elif isinstance(event, SilenceStarted) and judge is not None:
                check = judge(event)
                outcome.checks_ms.append(check.model_ms)
                start = now_ms + FRAME_MS
                complete = check.probability > 0.5
                pending.append((start + check.model_ms, event.at_ms, check.probability))
                revised = combine(complete, check) if combine is not None else None
                if revised is not None:
                    pending.append((start + max(revised[1], check.model_ms), event.at_ms, 0.9 if revised[0] else 0.1))
    return outcome


def vad_probabilities(vad: SileroVAD, audio: np.ndarray) -> list[float]:
    stream = vad.stream()
    frames = audio.size // FRAME_SAMPLES
    return [stream.probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(frames)]


def run_openevi(clips: list[Clip], with_text: bool) -> dict[str, dict[str, Outcome]]:
    vad = SileroVAD()
    model = SmartTurnModel()
    model.probability_sync(np.zeros(RATE, np.float32))  # load and warm up outside the measurement
    asr = WhisperASR(window_s=10.0) if with_text else None
    loop = asyncio.new_event_loop()
    if asr is not None:
        loop.run_until_complete(asr.load())
    checks: dict[tuple[str, str, float, float], Check] = {}

    def judge_for(clip: Clip, delay_ms: float = 0.0) -> Callable[[SilenceStarted], Check]:
        def judge(silence: SilenceStarted) -> Check:
            key = (clip.name, clip.kind, silence.at_ms, delay_ms)
            if key not in checks:
                audio = silence.audio
                if delay_ms:  # the check waits: it sees that much more of the silence, and starts later
                    start = round((silence.at_ms + FRAME_MS) * RATE / 1000)
                    audio = np.concatenate((audio, clip.audio[start : start + round(delay_ms * RATE / 1000)]))
                started = time.perf_counter()
                probability = model.probability_sync(audio)
                check = Check(probability, delay_ms + (time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                check.pitch_drop_st = final_pitch_drop(silence.audio)
                check.pitch_ms = (time.perf_counter() - started) * 1000
                if asr is not None and not delay_ms:
                    started = time.perf_counter()
                    check.transcript = loop.run_until_complete(asr.transcribe(silence.audio)).text
                    check.transcript_ms = (time.perf_counter() - started) * 1000
                checks[key] = check
            return checks[key]

        return judge

    detectors: dict[str, tuple[float | None, Combine | None]] = {
        "silence": (None, None),
        "smart-turn": (0.0, None),
        "smart-turn, checked after 192 ms": (192.0, None),
        "smart-turn+pitch": (0.0, _by_pitch),
    }
    if with_text:
        detectors["smart-turn+text"] = (0.0, _by_text)
    results: dict[str, dict[str, Outcome]] = {name: {} for name in detectors}
    for clip in clips:
        probabilities = vad_probabilities(vad, clip.audio)
        for name, (delay_ms, combine) in detectors.items():
            judge = judge_for(clip, delay_ms) if delay_ms is not None else None
            results[name][f"{clip.kind}:{clip.name}"] = drive(clip, probabilities, judge, combine)
    if asr is not None:
        loop.run_until_complete(asr.aclose())
    loop.close()
    return results


# --- pipecat's side ------------------------------------------------------------------------------


def write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def run_pipecat(python: str, clips: list[Clip], directory: Path) -> dict[str, Outcome]:
    listing = [{"name": f"{c.kind}:{c.name}", "wav": str(directory / f"{i}.wav")} for i, c in enumerate(clips)]
    done = subprocess.run(
        [python, str(PIPECAT_SCRIPT)], input=json.dumps(listing), capture_output=True, text=True, check=True
    )
    return {r["name"]: Outcome(r["turn_ends_ms"], r["checks_ms"]) for r in json.loads(done.stdout)}


# --- the table -----------------------------------------------------------------------------------


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summarize(name: str, clips: list[Clip], outcomes: dict[str, Outcome]) -> dict[str, float | str]:
    gaps, early, cut_ins, cuts, checks = [], 0, 0, 0, []
    for clip in clips:
        outcome = outcomes[f"{clip.kind}:{clip.name}"]
        checks += outcome.checks_ms
        after = [t for t in outcome.turn_ends_ms if t > clip.voiced_end_ms]
        final_gap = (after[-1] if after else max(outcome.turn_ends_ms, default=float("inf"))) - clip.voiced_end_ms
        if clip.kind == "complete":
            gaps.append(final_gap)
            early += any(t < clip.voiced_end_ms - FRAME_MS for t in outcome.turn_ends_ms)
        else:
            cuts += 1
            cut_ins += final_gap <= CUT_IN_MS
    return {
        "detector": name,
        "complete": len(gaps),
        "median_ms": statistics.median(gaps),
        "p95_ms": _p95(gaps),
        "early_ends": early,
        "cut_offs": cuts,
        "false_cut_ins": cut_ins / max(cuts, 1),
        "check_ms": statistics.median(checks) if checks else 0.0,
    }


def print_table(rows: list[dict[str, float | str]]) -> None:
    print(
        "| detector | complete clips | median gap ms | p95 gap ms | ended inside the utterance "
        "| cut-off clips | false cut-ins | median check ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['detector']} | {r['complete']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | {r['early_ends']} "
            f"| {r['cut_offs']} | {100 * float(r['false_cut_ins']):.0f}% | {r['check_ms']:.0f} |"
        )


def recordings(limit: int | None) -> list[tuple[str, np.ndarray]]:
    from tests.support import real_speech

    found = real_speech.english_utterances()
    return found[:limit] if limit else found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipecat-python", help="an interpreter with pipecat-ai==1.14.0 installed")
    parser.add_argument("--limit", type=int, help="use only the first N recordings")
    parser.add_argument("--no-text", action="store_true", help="skip the transcript combination (no ASR)")
    parser.add_argument("--details", type=Path, help="write per-clip results (JSON) here")
    args = parser.parse_args()
    whisper_dir = assemble_packaged_model(default_cache_dir())
    clips = build_set(recordings(args.limit), whisper_dir)
    complete = sum(c.kind == "complete" for c in clips)
    print(f"{complete} complete, {len(clips) - complete} cut off", file=sys.stderr)
    results = run_openevi(clips, with_text=not args.no_text)
    if args.pipecat_python:
        with tempfile.TemporaryDirectory(prefix="openevi-eot-") as tmp:
            for i, clip in enumerate(clips):
                write_wav(Path(tmp) / f"{i}.wav", clip.audio)
            results["pipecat 1.14 smart-turn"] = run_pipecat(args.pipecat_python, clips, Path(tmp))
    rows = [summarize(name, clips, outcomes) for name, outcomes in results.items()]
    print_table(rows)
    if args.details:
        details = [
            {
                "clip": f"{c.kind}:{c.name}",
                "text": c.text,
                "voiced_end_ms": c.voiced_end_ms,
                **{name: outcomes[f"{c.kind}:{c.name}"].turn_ends_ms for name, outcomes in results.items()},
            }
            for c in clips
        ]
        args.details.write_text(json.dumps(details, indent=1))


if __name__ == "__main__":
    main()
