"""The ear of a chat: audio_input → decode → VAD → turn detection → transcript + emotion measures.

Work on each audio frame is small and synchronous (decode, resample, one VAD step). Transcription
starts speculatively the moment the user falls silent, so by the time the end-of-turn silence has
passed the words are usually ready; if the user speaks again the speculation is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from openevi.audio.decode import AudioDecoder, DecodeError
from openevi.chat.config import TurnDetection
from openevi.chat.tasks import TaskScope
from openevi.chat.turn_detection import (
    SilenceStarted,
    SpeechOngoing,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
)
from openevi.speech.asr.base import SpeechRecognizer, Transcript
from openevi.speech.prosody.base import ProsodyModel
from openevi.speech.vad.base import VoiceActivityDetector

log = logging.getLogger("openevi.chat.listener")

# Interim transcripts (verbose_transcription) are refreshed at most this often while the user speaks.
INTERIM_EVERY_MS = 1000
# VAD steps run between turns of the event loop in groups this large (~1 s of audio at 32 ms frames).
_YIELD_EVERY_FRAMES = 32


# Words that acknowledge without taking the floor (OPENEVI_BACKCHANNEL_TOLERANCE).
BACKCHANNEL_WORDS = frozenset(
    {"mm", "mmm", "mhm", "hm", "hmm", "uh", "huh", "mm-hmm", "uh-huh", "yeah", "yep", "yes", "yup", "ok"}
    | {"okay", "right", "sure", "i_see", "got_it", "aha", "ah", "oh"}
)


def is_backchannel(text: str) -> bool:
    """Whether a short utterance only acknowledges ("mm-hmm", "yeah, right", "okay", "I see")."""
    joined = re.sub(r"\bi see\b", "i_see", re.sub(r"\bgot it\b", "got_it", text.lower()))
    words = [w.strip("-'") for w in re.split(r"[^a-z_'-]+", joined) if w.strip("-'")]
    return 0 < len(words) <= 3 and all(w in BACKCHANNEL_WORDS for w in words)


@dataclass(frozen=True)
class HeardTurn:
    """A finished user turn."""

    text: str
    begin_ms: int
    end_ms: int
    emotions: dict[str, float] | None
    language: str | None
    interrupting: bool = False
    """The user spoke long enough (min_interruption_ms) to take the floor during this turn."""


@dataclass
class _Speculation:
    audio_samples: int
    transcript: asyncio.Task[Transcript]
    emotions: asyncio.Task[dict[str, float]] | None


class Listener:
    """Turns a chat's audio_input stream into user turns, interruptions and interim transcripts."""

    def __init__(
        self,
        *,
        vad: VoiceActivityDetector,
        asr: SpeechRecognizer,
        prosody: ProsodyModel | None,
        turn_detection: TurnDetection,
        min_interruption_ms: int,
        verbose: bool,
        on_turn: Callable[[HeardTurn], Awaitable[None]],
        on_speech: Callable[[int], Awaitable[None]],
        on_interim: Callable[[str, int, int], None],
        on_error: Callable[[str], None],
        on_audio: Callable[[np.ndarray, int], None] | None = None,
        on_mark: Callable[[str], None] = lambda stage: None,
        on_early: Callable[[HeardTurn], Awaitable[None]] | None = None,
        on_resumed: Callable[[], Awaitable[None]] | None = None,
        tasks: TaskScope | None = None,
    ) -> None:
        """`tasks`: the chat's task scope, which then owns (and at the end cancels) the listener's
        tasks; without one the listener has its own, closed by `aclose`."""
        self.sample_rate = vad.sample_rate
        self._vad = vad.stream()
        self._frame = vad.frame_samples
        self._asr = asr
        self._prosody = prosody
        self._detector = TurnDetector(
            threshold=turn_detection.speech_detection_threshold,
            prefix_padding_ms=turn_detection.prefix_padding_ms,
            end_of_turn_silence_ms=turn_detection.end_of_turn_silence_ms,
            sample_rate=self.sample_rate,
            frame_samples=self._frame,
        )
        self._min_interruption_ms = min_interruption_ms
        self._verbose = verbose
        self._on_turn = on_turn
        self._on_speech = on_speech
        self._on_interim = on_interim
        self._on_error = on_error
        self._on_audio = on_audio
        self._mark = on_mark
        self._on_early = on_early
        self._on_resumed = on_resumed
        self._decoder: AudioDecoder | None = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._speculation: _Speculation | None = None
        self._interim: asyncio.Task[None] | None = None
        self._last_interim_ms = 0.0
        self._turn_frames: list[np.ndarray] = []  # this turn's speech so far, for interim transcripts
        self._samples_in = 0
        self._turn_begin_ms = 0
        self._owns_tasks = tasks is None
        self._tasks = tasks if tasks is not None else TaskScope("listener")
        self._onset_ms = 0.0
        self._interrupting = False

    def configure_pcm(self, sample_rate: int, channels: int) -> None:
        """session_settings.audio: raw linear16 at this rate (a new decoder from the next chunk on)."""
        self._replace_decoder(AudioDecoder(target_rate=self.sample_rate, pcm_format=(sample_rate, channels)))

    def _replace_decoder(self, decoder: AudioDecoder | None) -> None:
        # The old decoder's demuxer thread is told to stop now (so it ends even if the chat closes
        # before the join below runs), and joined in the background (never on the event loop).
        old, self._decoder = self._decoder, decoder
        if old is not None:
            old.close()
            self._spawn(old.aclose())

    async def push(self, data: bytes) -> None:
        """One audio_input chunk."""
        if self._decoder is None:
            self._decoder = AudioDecoder(target_rate=self.sample_rate, pcm_format=None)
        try:
            samples = await self._decoder.push_async(data)
        except DecodeError as exc:
            self._on_error(str(exc))
            self._replace_decoder(None)  # the next chunk may start a valid stream again
            return
        await self._feed(samples)

    async def _feed(self, samples: np.ndarray) -> None:
        if samples.size == 0:
            return
        if self._on_audio is not None:
            self._on_audio(samples, self._samples_in * 1000 // self.sample_rate)
        self._samples_in += samples.size
        buffered = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = buffered.size - buffered.size % self._frame
        for start in range(0, whole, self._frame):
            if start and start % (_YIELD_EVERY_FRAMES * self._frame) == 0:
                await asyncio.sleep(0)  # hostile (issue 19): a long chunk must not hold the loop for its whole VAD
            frame = buffered[start : start + self._frame]
            events = self._detector.push(frame, self._vad.probability(frame))
            if self._detector.in_turn:
                self._turn_frames.append(frame)
            for event in events:
                await self._on_event(event)
        self._pending = buffered[whole:].copy()

    async def _on_event(self, event: object) -> None:
        match event:
            case SpeechStarted(at_ms=at_ms):
                self._mark("speech_start")
                self._last_interim_ms = 0.0
                self._turn_frames = []
                self._turn_begin_ms = int(at_ms)
                self._onset_ms = at_ms
                self._interrupting = False
            case SpeechOngoing(speech_ms=speech_ms, at_ms=at_ms):
                # "How long the user must speak": counted from the onset across short inter-word
                # gaps, with at least half of that span voiced, so that clicks far apart do not add up.
                span_ms = at_ms + self._detector.frame_ms - self._onset_ms
                if span_ms >= self._min_interruption_ms and speech_ms >= self._min_interruption_ms / 2:
                    self._interrupting = True
                    await self._on_speech(int(span_ms))
                if self._verbose and speech_ms - self._last_interim_ms >= INTERIM_EVERY_MS:
                    self._last_interim_ms = speech_ms
                    self._start_interim()
            case SilenceStarted(at_ms=at_ms, audio=audio):
                self._mark("speech_end")
                self._speculate(audio, begin_ms=self._turn_begin_ms, end_ms=int(at_ms))
            case SpeechResumed():
                self._mark("speech_resumed")
                self._cancel_speculation()
                if self._on_resumed is not None:
                    await self._on_resumed()
            case TurnEnded(audio=audio, begin_ms=begin_ms, end_ms=end_ms):
                self._mark("turn_end")
                # Finishing waits for the recognizer: let frames keep flowing meanwhile (barge-in).
                self._tasks.spawn(
                    self._finish_turn(audio, int(begin_ms), int(end_ms), interrupting=self._interrupting),
                    name="listener-finish-turn",
                )

    def _speculate(self, audio: np.ndarray, *, begin_ms: int, end_ms: int) -> None:
        """Start transcribing (and scoring) what was said so far, before the turn is certain."""
        self._cancel_speculation()
        if audio.size == 0:
            return
        # A speculation's failure is reported when the turn uses it (see _transcribed, _retrieve).
        transcript = self._tasks.spawn(self._asr.transcribe(audio), name="listener-speculate", log_failure=False)
        transcript.add_done_callback(self._transcribed)
        emotions = (
            self._tasks.spawn(self._prosody.score(audio), name="listener-speculate-prosody", log_failure=False)
            if self._prosody
            else None
        )
        if emotions is not None:
            emotions.add_done_callback(_retrieve)
        spec = _Speculation(audio.size, transcript, emotions)
        self._speculation = spec
        if self._on_early is not None:
            self._tasks.spawn(self._early(spec, begin_ms, end_ms), name="listener-early")

    async def _early(self, spec: _Speculation, begin_ms: int, end_ms: int) -> None:
        """The words are ready before the end of the turn is certain: the engine may start answering."""
        try:
            transcript = await spec.transcript
            emotions = await spec.emotions if spec.emotions is not None else None
        except (asyncio.CancelledError, Exception):
            return
        if self._speculation is spec and transcript.text.strip() and self._on_early is not None:
            await self._on_early(HeardTurn(transcript.text.strip(), begin_ms, end_ms, emotions, transcript.language))

    def _cancel_speculation(self) -> None:
        spec, self._speculation = self._speculation, None
        if spec is not None:
            spec.transcript.cancel()
            if spec.emotions is not None:
                spec.emotions.cancel()

    def _start_interim(self) -> None:
        if self._interim is not None and not self._interim.done():
            return  # one interim transcription at a time; skip rather than queue
        if not self._turn_frames:
            return
        audio = np.concatenate(self._turn_frames)
        begin_ms = self._turn_begin_ms

        async def run() -> None:
            result = await self._asr.transcribe(audio)
            if result.text.strip():
                self._on_interim(result.text.strip(), begin_ms, begin_ms + audio.size * 1000 // self.sample_rate)

        self._interim = self._tasks.spawn(run(), name="listener-interim", log_failure=False)
        self._interim.add_done_callback(_retrieve)

    async def _finish_turn(self, audio: np.ndarray, begin_ms: int, end_ms: int, *, interrupting: bool) -> None:
        spec, self._speculation = self._speculation, None
        if self._interim is not None:
            self._interim.cancel()
        try:
            if spec is not None and spec.audio_samples == audio.size:  # the same audio: reuse the speculation
                transcript = await spec.transcript
                emotions = await spec.emotions if spec.emotions is not None else None
            else:
                if spec is not None:
                    spec.transcript.cancel()
                emotion_task = (
                    self._tasks.spawn(self._prosody.score(audio), name="listener-prosody", log_failure=False)
                    if self._prosody
                    else None
                )
                if emotion_task is not None:
                    emotion_task.add_done_callback(_retrieve)  # unread if transcription fails
                transcript = await self._asr.transcribe(audio)
                self._mark("asr_done")
                emotions = await emotion_task if emotion_task is not None else None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("transcription failed")
            self._on_error(f"transcription failed: {exc}")
            return
        text = transcript.text.strip()
        if not text:
            return  # a cough or a click: VAD said speech, the recognizer heard no words
        await self._on_turn(HeardTurn(text, begin_ms, end_ms, emotions, transcript.language, interrupting))

    def _transcribed(self, task: asyncio.Task[Transcript]) -> None:
        _retrieve(task)  # a failed speculation is reported (once) when the turn is finished
        if not task.cancelled() and task.exception() is None:
            self._mark("asr_done")

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(work, name="listener-decoder-close")

    async def aclose(self) -> None:
        """Stop listening: speculation, interim transcripts and the decoder's thread."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            await decoder.aclose()
        self._cancel_speculation()
        if self._interim is not None:
            self._interim.cancel()
        if self._owns_tasks:
            await self._tasks.aclose()
        # Otherwise the chat's scope cancels and awaits them (ChatSession.close, before this).


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (it is reported where its result is used, if at all)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("background speech task failed: %s", task.exception())
