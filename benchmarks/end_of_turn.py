"""End of turn on real human speech: silence-only vs Smart Turn (and Pipecat 1.14's own way).

The set (built from the real recordings of tests/support/real_speech.py, English): each utterance whole
("complete") and cut off mid-phrase at a word boundary ("cut-off": the boundary nearest the middle
whose word carries no punctuation in Whisper's transcript; word times from faster-whisper), each
trimmed after the last frame Silero VAD calls speech (the "last voiced sample"), followed by 4 s of
near-silence (-80 dBFS noise).

Each clip is driven through openevi's TurnDetector frame by frame with the real Silero VAD, the real
model and the real Whisper (the listener's speculative transcript, started at each silence), on the
audio's own timeline: a check started at a frame answers after its measured compute time (applied at
the next frame boundary), so no wall clock paces the run. Measured per detector:
- complete: the gap from the last voiced sample to the end of the final turn, and to its final
  user_message (the later of the turn's end and its transcript; median, p95), and how many clips
  had a turn end before their speech was over (a premature cut inside the utterance);
- cut-off: the share whose turn ends within 1 s of the last voiced sample (a false cut-in: the user
  was mid-sentence).

Detectors: `silence` (the config's end_of_turn_silence_ms, 800 ms by default), `smart-turn` (the
model's verdict: complete → OPENEVI_TURN_MIN_SILENCE_MS, unfinished → up to
OPENEVI_TURN_MAX_SILENCE_MS), and combinations measured to decide whether they help: `+ words` (a
complete verdict holds only once the speculative transcript finishes a sentence; EndOfTurnRule's
confirm_by_words), the same unless the model is sure (P > 0.9), a weaker reading of the words (only
a trailing comma or a final "and"/"the"/"to"… vetoes), `+ pitch` (a final pitch fall of ≥ 3
semitones below the turn's median makes an "unfinished" verdict complete, a final rise of ≥ 2 makes
"complete" unfinished), and the model checked after 192 ms of silence instead of at its start.
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
from typing import TypeVar

import numpy as np

from openevi.chat.turn_detection import (
    EndOfTurnRule,
    SilenceStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
)
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
PROMPT_STRIDE = 4
T = TypeVar("T")
PIPECAT_SCRIPT = Path(__file__).with_name("end_of_turn_pipecat.py")


@dataclass
class Clip:
    name: str
    kind: str  # "complete" | "cut-off"
    audio: np.ndarray  # 16 kHz float32, lead-in + speech + trailing near-silence
    voiced_end_ms: float
    text: str
    words_ms: float = 0.0  # Whisper's measured time on the turn's audio (its last silence), set by run_openevi


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
    user_message_ms: list[float] = field(default_factory=list)  # when each turn's transcript was final too
    silences: list[tuple[float, float, str]] = field(default_factory=list)  # (at ms, P(complete), words)


# --- the set -------------------------------------------------------------------------------------


def _voiced_bounds(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample of 10 ms windows within 35 dB of the loudest one."""
    hop = RATE // 100
    n = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = np.flatnonzero(db > db.max() - 35)
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def _speech_end(vad: SileroVAD, audio: np.ndarray) -> int:
    """The end of the last 32 ms frame Silero calls speech (p >= 0.5): the last voiced sample.
    (An energy threshold alone would keep a telephone line's noise floor as "speech".)"""
    stream = vad.stream()
    voiced = [
        i for i in range(audio.size // FRAME_SAMPLES)
        if stream.probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) >= 0.5
    ]  # fmt: skip
    return (voiced[-1] + 1) * FRAME_SAMPLES if voiced else audio.size


def _framed(speech: np.ndarray, vad: SileroVAD, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Lead-in + speech (peak-normalised, 10 ms fades) + trailing near-silence; the voiced end in ms."""
    begin, end = _voiced_bounds(speech)
    speech = speech[begin:end].astype(np.float32)
    speech = speech[: _speech_end(vad, speech)]
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
    vad = SileroVAD()
    rng = np.random.default_rng(16)
    clips: list[Clip] = []
    for name, audio in recordings:
        segments, _ = model.transcribe(audio, language="en", word_timestamps=True, beam_size=1)
        words = [w for s in segments for w in (s.words or [])]
        text = " ".join(w.word.strip() for w in words)
        if len(words) < 4:
            continue  # too short to cut mid-phrase
        complete, voiced_ms = _framed(audio, vad, rng)
        clips.append(Clip(name, "complete", complete, voiced_ms, text))
        candidates = [k for k in range(2, len(words) - 1) if not re.search(r"[,.;:?!]$", words[k - 1].word.strip())]
        if not candidates:
            continue
        k = min(candidates, key=lambda k: abs(k - len(words) / 2))
        cut = int(RATE * (words[k - 1].end + max(0.0, words[k].start - words[k - 1].end) / 2))
        cut_audio, cut_ms = _framed(audio[:cut], vad, rng)
        kept = " ".join(w.word.strip() for w in words[:k])
        clips.append(Clip(name, "cut-off", cut_audio, cut_ms, kept + " …"))
    return clips


# --- the detectors compared -----------------------------------------------------------------------


@dataclass(frozen=True)
class Detector:
    """One way of ending turns, as this benchmark runs it."""

    uses_model: bool
    confirm_by_words: bool = False  # EndOfTurnRule.confirm_by_words: the words must finish a sentence
    sure: float = 1.0  # EndOfTurnRule.sure: above this P(complete), no words are needed
    mid_phrase_only: bool = False  # a weaker reading of the words: only a trailing comma or "and/the/to…" veto
    pitch: bool = False  # a final pitch fall (>= 3 st) or rise (>= 2 st) revises the verdict
    check_delay_ms: float = 0.0  # the model looks after this much silence (pipecat: its VAD's stop_secs)


DETECTORS: dict[str, Detector] = {
    "silence": Detector(uses_model=False),
    "smart-turn": Detector(uses_model=True),
    "smart-turn + words (mid-phrase endings only)": Detector(
        uses_model=True, confirm_by_words=True, mid_phrase_only=True
    ),
    "smart-turn + words": Detector(uses_model=True, confirm_by_words=True),
    "smart-turn + words unless P > 0.9": Detector(uses_model=True, confirm_by_words=True, sure=0.9),
    "smart-turn + pitch": Detector(uses_model=True, pitch=True),
    "smart-turn, checked after 192 ms": Detector(uses_model=True, check_delay_ms=192.0),
}


def final_pitch_drop(audio: np.ndarray) -> float | None:
    """Semitones from the turn's median pitch to the median of its last 300 ms of voicing."""
    f0, dip = yin(audio, RATE)
    voiced = np.flatnonzero((dip < 0.25) & (f0 > 0))
    if voiced.size < 20:
        return None
    semitones = 12.0 * np.log2(f0[voiced] / 27.5)
    tail = semitones[voiced >= voiced[-1] - 30]  # hops are 10 ms
    return float(np.median(tail) - np.median(semitones))


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


Action = Callable[[], list[TurnEvent]]


def drive(
    clip: Clip, probabilities: list[float], how: Detector, judge: Callable[[SilenceStarted, float], Check]
) -> Outcome:
    """One clip through the TurnDetector on the audio timeline. Each silence starts the speculative
    transcript (as the listener does) and, with a model, a check; their answers land when ready."""
    rule = (
        EndOfTurnRule(
            _CachedModel(), MIN_SILENCE_MS, MAX_SILENCE_MS, confirm_by_words=how.confirm_by_words, sure=how.sure
        )
        if how.uses_model
        else None
    )
    detector = TurnDetector(
        threshold=TURN_DETECTION["speech_detection_threshold"],
        prefix_padding_ms=TURN_DETECTION["prefix_padding_ms"],
        end_of_turn_silence_ms=TURN_DETECTION["end_of_turn_silence_ms"],
        rule=rule,
    )
    outcome = Outcome()
    pending: list[tuple[float, int, Action]] = []  # (ready at ms, order, what lands then)
    words_ready_ms = 0.0

    def ended(at_ms: float) -> None:
        outcome.turn_ends_ms.append(at_ms)
        outcome.user_message_ms.append(max(at_ms, words_ready_ms))  # the final transcript is the speculation

    for i, probability in enumerate(probabilities):
        now_ms = i * FRAME_MS
        for item in sorted(p for p in pending if p[0] <= now_ms):
            pending.remove(item)
            if [e for e in item[2]() if isinstance(e, TurnEnded)]:
                ended(now_ms)
        frame = clip.audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        for event in detector.push(frame, probability):
            if isinstance(event, TurnEnded):
                ended(now_ms + FRAME_MS)
            elif isinstance(event, SilenceStarted):
                check = judge(event, how.check_delay_ms)
                start = now_ms + FRAME_MS
                words_ready_ms = start + check.transcript_ms
                clip.words_ms = check.transcript_ms
                if how.uses_model:
                    outcome.checks_ms.append(check.model_ms)
                    outcome.silences.append((event.at_ms, round(check.probability, 3), check.transcript))
                    pending += _answers(detector, event.at_ms, check, how, start, len(pending))
    return outcome


def _answers(
    detector: TurnDetector, at_ms: float, check: Check, how: Detector, start: float, order: int
) -> list[tuple[float, int, Action]]:
    """When the model's verdict (and the words, with them) reach the detector, and what they say."""
    probability, ready = check.probability, check.model_ms
    drop = check.pitch_drop_st
    if how.pitch and drop is not None:
        ready += check.pitch_ms
        if probability <= 0.5 and drop <= -3.0:
            probability = 0.9
        elif probability > 0.5 and drop >= 2.0:
            probability = 0.1
    answers: list[tuple[float, int, Action]] = [(start + ready, order, lambda: detector.verdict(at_ms, probability))]
    if how.confirm_by_words:
        text = check.transcript.strip()
        if how.mid_phrase_only and not re.search(r"[.?!,;:-]$", text):
            text += "."  # a bare ending counts as finished unless its last word is "and", "the", "to" …
        answers.append((start + max(check.transcript_ms, ready), order + 1, lambda: detector.heard(at_ms, text)))
    return answers


def vad_probabilities(vad: SileroVAD, audio: np.ndarray) -> list[float]:
    stream = vad.stream()
    frames = audio.size // FRAME_SAMPLES
    return [stream.probability(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(frames)]


def _timed(work: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = work()
    return result, (time.perf_counter() - started) * 1000


def run_openevi(clips: list[Clip]) -> dict[str, dict[str, Outcome]]:
    vad = SileroVAD()
    model = SmartTurnModel()
    model.probability_sync(np.zeros(RATE, np.float32))  # load and warm up outside the measurement
    asr = WhisperASR(window_s=10.0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asr.load())
    verdicts: dict[tuple[str, str, float, float], tuple[float, float]] = {}
    words: dict[tuple[str, str, float], tuple[str, float]] = {}
    pitch: dict[tuple[str, str, float], tuple[float | None, float]] = {}

    def judge_for(clip: Clip) -> Callable[[SilenceStarted, float], Check]:
        def judge(silence: SilenceStarted, delay_ms: float) -> Check:
            key = (clip.name, clip.kind, silence.at_ms)
            if (*key, delay_ms) not in verdicts:
                audio = silence.audio
                if delay_ms:  # the check waits: it sees that much more of the silence, and starts later
                    begin = round((silence.at_ms + FRAME_MS) * RATE / 1000)
                    audio = np.concatenate((audio, clip.audio[begin : begin + round(delay_ms * RATE / 1000)]))
                probability, took = _timed(lambda: model.probability_sync(audio))
                verdicts[(*key, delay_ms)] = (probability, delay_ms + took)
            if key not in words:
                words[key] = _timed(lambda: loop.run_until_complete(asr.transcribe(silence.audio)).text)
                pitch[key] = _timed(lambda: final_pitch_drop(silence.audio))
            (probability, model_ms), (text, text_ms), (drop, drop_ms) = (
                verdicts[(*key, delay_ms)],
                words[key],
                pitch[key],
            )
            return Check(probability, model_ms, text, text_ms, drop, drop_ms)

        return judge

    results: dict[str, dict[str, Outcome]] = {name: {} for name in DETECTORS}
    for clip in clips:
        probabilities = vad_probabilities(vad, clip.audio)
        judge = judge_for(clip)
        for name, how in DETECTORS.items():
            results[name][f"{clip.kind}:{clip.name}"] = drive(clip, probabilities, how, judge)
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
    words_ms = {f"{c.kind}:{c.name}": c.words_ms for c in clips}
    # Pipecat's default (wait_for_transcript=True) ends the user turn once the transcript is in too; its
    # speech-to-text gets the segment when the VAD reports the stop. The same Whisper, timed on our side.
    return {
        r["name"]: Outcome(
            r["turn_ends_ms"],
            r["checks_ms"],
            [max(end, stop + words_ms[r["name"]]) for end, stop in zip(r["turn_ends_ms"], r["stops_ms"], strict=True)],
        )
        for r in json.loads(done.stdout)
    }


# --- the table -----------------------------------------------------------------------------------


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _final(outcome: Outcome, voiced_end_ms: float) -> tuple[float, float | None]:
    """The gaps from the last voiced sample to the end of the last turn, and to its final transcript."""
    ends = outcome.turn_ends_ms
    if not ends:
        return float("inf"), None
    last = max(range(len(ends)), key=lambda i: ends[i])
    message = outcome.user_message_ms[last] - voiced_end_ms if outcome.user_message_ms else None
    return ends[last] - voiced_end_ms, message


def summarize(name: str, clips: list[Clip], outcomes: dict[str, Outcome]) -> dict[str, float | str]:
    gaps: list[float] = []
    messages: list[float] = []
    early = cut_ins = cuts = 0
    checks: list[float] = []
    for clip in clips:
        outcome = outcomes[f"{clip.kind}:{clip.name}"]
        checks += outcome.checks_ms
        gap, message = _final(outcome, clip.voiced_end_ms)
        if clip.kind == "complete":
            gaps.append(gap)
            messages += [message] if message is not None else []
            early += any(t < clip.voiced_end_ms - FRAME_MS for t in outcome.turn_ends_ms)
        else:
            cuts += 1
            cut_ins += gap <= CUT_IN_MS
    return {
        "detector": name,
        "complete": len(gaps),
        "median_ms": statistics.median(gaps),
        "p95_ms": _p95(gaps),
        "message_median_ms": statistics.median(messages) if messages else "—",
        "message_p95_ms": _p95(messages) if messages else "—",
        "early_ends": early,
        "cut_offs": cuts,
        "false_cut_ins": cut_ins / max(cuts, 1),
        "check_ms": statistics.median(checks) if checks else "—",
    }


def _ms(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.0f}"


def print_table(rows: list[dict[str, float | str]]) -> None:
    print(
        "| detector | complete: turn end, median / p95 ms | complete: user_message, median / p95 ms "
        "| complete clips cut inside | cut-offs answered within 1 s | median check ms |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['detector']} | {_ms(r['median_ms'])} / {_ms(r['p95_ms'])} "
            f"| {_ms(r['message_median_ms'])} / {_ms(r['message_p95_ms'])} | {r['early_ends']} of {r['complete']} "
            f"| {100 * float(r['false_cut_ins']):.0f}% of {r['cut_offs']} | {_ms(r['check_ms'])} |"
        )


def recordings(limit: int | None) -> list[tuple[str, np.ndarray]]:
    """English utterances of 1-12 s: every speaker's, and every 4th of the 188 Asterisk prompts (one
    voice), so that no single speaker dominates the set."""
    from tests.support.real_speech import utterances

    english = sorted(utterances("en", min_seconds=1.0, max_seconds=12.0), key=lambda u: u.id)
    prompts = [u for u in english if u.speaker.startswith("asterisk")]
    chosen = [u for u in english if not u.speaker.startswith("asterisk")] + prompts[::PROMPT_STRIDE]
    return [(u.id, u.load(RATE)) for u in chosen[:limit]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipecat-python", help="an interpreter with pipecat-ai==1.14.0 installed")
    parser.add_argument("--limit", type=int, help="use only the first N recordings")
    parser.add_argument("--details", type=Path, help="write per-clip results (JSON) here")
    args = parser.parse_args()
    whisper_dir = assemble_packaged_model(default_cache_dir())
    clips = build_set(recordings(args.limit), whisper_dir)
    complete = sum(c.kind == "complete" for c in clips)
    print(f"{complete} complete, {len(clips) - complete} cut off", file=sys.stderr)
    results = run_openevi(clips)
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
                "silences (at ms, P(complete), words)": results["smart-turn"][f"{c.kind}:{c.name}"].silences,
            }
            for c in clips
        ]
        args.details.write_text(json.dumps(details, indent=1))


if __name__ == "__main__":
    main()
