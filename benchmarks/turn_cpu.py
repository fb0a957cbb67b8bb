"""CPU seconds per voice turn, by stage, measured in-process on a fixed set of voice turns.

The server's own speech providers (built from the settings, as `openevi serve` builds them) and its
`Listener` hear a fixed set of turns: the twelve espeak-ng sentences of `tests/support/speech.py`,
each followed by 2.5 s of silence, as linear16 16 kHz. Every turn is answered with the scripted
benchmark reply, synthesized by the TTS provider, and that answer is scored for assistant prosody
as a chat does. The same audio is decoded once more from a MediaRecorder-like webm/opus stream
(100 ms timeslices) and from linear16 at 48 kHz (resampled to 16 kHz) to price the decoders.

The run is sequential: after each 100 ms chunk the benchmark waits until every task the listener
started has finished, so exactly one stage runs at a time and `time.process_time()` (CPU of all the
process's threads, CTranslate2's and onnxruntime's pools included) around a provider call is that
call's cost. ASR calls are told apart by the listener task that made them (speculative, interim,
final). Interim transcripts are counted with `verbose_transcription` on; nothing else depends on it.

    .venv/bin/python -m benchmarks.turn_cpu                  # the settings' defaults
    OPENEVI_ASR_THREADS=2 .venv/bin/python -m benchmarks.turn_cpu   # any OPENEVI_* setting applies
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.voice import SENTENCES as QUESTIONS
from openevi.audio.decode import AudioDecoder
from openevi.chat.config import TurnDetection
from openevi.chat.listener import HeardTurn, Listener
from openevi.chat.tasks import TaskScope
from openevi.schemas.config_defaults import INTERRUPTION, TURN_DETECTION
from openevi.settings import Settings
from openevi.speech.asr.base import SpeechRecognizer, Transcript
from openevi.speech.asr.registry import create_asr
from openevi.speech.asr.registry import provider_options as asr_options
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.prosody.registry import create_prosody
from openevi.speech.prosody.registry import provider_options as prosody_options
from openevi.speech.tts import piper
from openevi.speech.tts.registry import create_tts
from openevi.speech.tts.registry import provider_options as tts_options
from openevi.speech.vad.base import VADStream, VoiceActivityDetector
from openevi.speech.vad.registry import create_vad
from openevi.speech.voices import DEFAULT_VOICE
from tests.support.fakes import ListenerLog
from tests.support.speech import RATE, SENTENCES, encode_timesliced, speak, to_linear16

REPLY = "Sure. Here is a short answer for you."  # what loop_lag.py's and capacity.py's scripted model says
PAUSE_S = 2.5
CHUNK_S = 0.1


@dataclass
class Ledger:
    """CPU seconds and calls per stage."""

    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.cpu[name] += time.process_time() - started
            self.calls[name] += 1


class MeteredVAD:
    def __init__(self, inner: VoiceActivityDetector, ledger: Ledger) -> None:
        self._inner, self._ledger = inner, ledger
        self.sample_rate, self.frame_samples = inner.sample_rate, inner.frame_samples

    def stream(self) -> VADStream:
        inner, ledger = self._inner.stream(), self._ledger

        class Stream:
            def probability(self, frame: np.ndarray) -> float:
                with ledger.stage("vad"):
                    return inner.probability(frame)

            def reset(self) -> None:
                inner.reset()

        return Stream()


_ASR_KIND = {"listener-speculate": "asr speculative", "listener-interim": "asr interim"}


class MeteredASR:
    def __init__(self, inner: SpeechRecognizer, ledger: Ledger) -> None:
        self._inner, self._ledger = inner, ledger
        self.capabilities = inner.capabilities

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        task = asyncio.current_task()
        kind = _ASR_KIND.get(task.get_name() if task else "", "asr final")
        with self._ledger.stage(kind):
            return await self._inner.transcribe(audio, prompt=prompt)

    async def aclose(self) -> None:
        await self._inner.aclose()


class MeteredProsody:
    def __init__(self, inner: ProsodyModel, ledger: Ledger, name: str) -> None:
        self._inner, self._ledger, self._name = inner, ledger, name
        self.sample_rate = inner.sample_rate

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        with self._ledger.stage(self._name):
            return await self._inner.score(audio, text=text)


@contextmanager
def metered_resampling(module: Any, ledger: Ledger, name: str) -> Iterator[None]:
    """Count the CPU of `module.soxr`'s streaming resamplers (in whichever thread they run)."""
    real = module.soxr
    lock = threading.Lock()

    class Stream:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._inner = real.ResampleStream(*args, **kwargs)

        def resample_chunk(self, *args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return self._inner.resample_chunk(*args, **kwargs)
            finally:
                with lock:
                    ledger.cpu[name] += time.thread_time() - started
                    ledger.calls[name] += 1

        def clear(self) -> None:
            self._inner.clear()

    module.soxr = SimpleNamespace(ResampleStream=Stream, resample=real.resample)
    try:
        yield
    finally:
        module.soxr = real


def turns_audio(sentences: list[str]) -> tuple[np.ndarray, int]:
    """The fixed conversation: each sentence then PAUSE_S of silence."""
    parts = []
    for text in sentences:
        parts += [speak(text), np.zeros(int(RATE * PAUSE_S), dtype=np.float32)]
    return np.concatenate(parts), len(sentences)


async def price_decoders(audio: np.ndarray, ledger: Ledger) -> None:
    """Decode the same conversation as webm/opus timeslices and as linear16 48 kHz."""
    step = int(RATE * CHUNK_S)
    webm = encode_timesliced(audio, slice_ms=round(CHUNK_S * 1000))
    decoder = AudioDecoder(target_rate=RATE, pcm_format=None)
    for chunk in webm:
        with ledger.stage("decode webm/opus"):
            await decoder.push_async(chunk)
    await decoder.aclose()
    import soxr

    loud48 = np.asarray(soxr.resample(audio, RATE, 48_000), dtype=np.float32)
    pcm48 = AudioDecoder(target_rate=RATE, pcm_format=(48_000, 1))
    for start in range(0, loud48.size, step * 3):
        data = to_linear16(loud48[start : start + step * 3])
        with ledger.stage("decode linear16 48k→16k"):
            await pcm48.push_async(data)
    await pcm48.aclose()


async def run(sentences: list[str], *, verbose: bool) -> tuple[Ledger, int, float]:
    settings = Settings()
    ledger = Ledger()
    vad = create_vad(settings.vad_provider)
    asr = create_asr(settings.asr_provider, **asr_options(settings.asr_provider, settings))
    prosody = create_prosody(settings.prosody_provider, **prosody_options(settings.prosody_provider, settings))
    tts = create_tts(settings.tts_provider, **tts_options(settings.tts_provider, settings))
    for model in (asr, prosody):
        loader: Callable[[], Any] | None = getattr(model, "load", None)
        if loader is not None:
            await loader()
    async for _ in tts.synthesize("Hello.", voice=DEFAULT_VOICE):
        pass
    audio, turns = turns_audio(sentences)
    await price_decoders(audio, ledger)

    scope = TaskScope("turn-cpu")
    heard: list[HeardTurn] = []
    assistant = MeteredProsody(prosody, ledger, "emotion (assistant speech)")

    async def on_turn(turn: HeardTurn) -> None:
        heard.append(turn)
        pcm = bytearray()
        with (
            ledger.stage("tts (incl. its 24 kHz resampling)"),
            metered_resampling(piper, ledger, "  of which resampling to 24 kHz"),
        ):
            async for piece in tts.synthesize(REPLY, voice=DEFAULT_VOICE):
                pcm += piece
        import soxr

        with ledger.stage("resample assistant 24k→16k"):
            samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float32) / 32768.0
            samples = soxr.resample(samples, tts.sample_rate, prosody.sample_rate).astype(np.float32)
        await assistant.score(samples, text=REPLY)

    class Events(ListenerLog):
        """The engine's side of the listener: each finished turn is answered (TTS) and scored."""

        async def heard(self, turn: HeardTurn) -> None:
            await on_turn(turn)

        def error(self, message: str) -> None:
            print("listener error:", message)

    listener = Listener(
        vad=MeteredVAD(vad, ledger),
        asr=MeteredASR(asr, ledger),
        prosody=MeteredProsody(prosody, ledger, "emotion (user speech)"),
        turn_detection=TurnDetection(**TURN_DETECTION),
        min_interruption_ms=INTERRUPTION["min_interruption_ms"],
        verbose=verbose,
        events=Events(),
        tasks=scope,
    )
    listener.configure_pcm(RATE, 1)
    step = int(RATE * CHUNK_S)
    started = time.process_time()
    for start in range(0, audio.size, step):
        await listener.push(to_linear16(audio[start : start + step]))
        while pending := scope.running():  # one stage at a time: wait for what this chunk started
            await asyncio.wait(pending)
    total = time.process_time() - started
    await listener.aclose()
    await scope.aclose()
    for provider in (asr, tts):
        await provider.aclose()
    closer = getattr(prosody, "aclose", None)
    if closer is not None:
        await closer()
    if len(heard) != turns:
        print(f"warning: heard {len(heard)} of {turns} turns")
    return ledger, turns, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=len(SENTENCES), help="how many of the 12 sentences")
    parser.add_argument("--questions", action="store_true", help="the questions of voice.py and capacity.py instead")
    parser.add_argument("--no-interim", action="store_true", help="verbose_transcription off")
    args = parser.parse_args()
    sentences = (QUESTIONS if args.questions else SENTENCES)[: args.turns]
    ledger, turns, total = asyncio.run(run(sentences, verbose=not args.no_interim))
    speech_s = sum(speak(s).size for s in sentences) / RATE
    print(f"{turns} turns ({speech_s:.1f} s of speech, {PAUSE_S} s pauses); load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':40s} {'calls/turn':>10s} {'CPU ms/turn':>12s}")
    for name in sorted(ledger.cpu, key=lambda n: -ledger.cpu[n]):
        print(f"{name:40s} {ledger.calls[name] / turns:10.1f} {1000 * ledger.cpu[name] / turns:12.1f}")
    print(f"{'listener + answer, all stages':40s} {'':10s} {1000 * total / turns:12.1f}")


if __name__ == "__main__":
    main()
