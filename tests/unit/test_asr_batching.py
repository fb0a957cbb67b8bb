"""Utterances of different chats waiting at once are transcribed in one batch, with the same words."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from openevi.settings import Settings
from openevi.speech.asr.batching import Batcher
from openevi.speech.asr.registry import provider_options
from openevi.speech.asr.whisper import WhisperASR, assemble_packaged_model
from tests.support.speech import SENTENCES, speak


class Gate:
    """A batch function that holds its first batch until released and records every batch."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.seen: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.seen.append(list(items))
        self.started.set()
        self.release.wait(timeout=30)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def behind_a_busy_worker(
    items: Sequence[int], *, max_batch: int = 8
) -> tuple[Gate, Batcher[int, int], list[asyncio.Task[int]]]:
    """Submit 1, wait until its batch runs (and holds the only worker), then queue `items` behind it."""
    gate = Gate()
    batcher: Batcher[int, int] = Batcher(gate, workers=1, max_batch=max_batch, name="test")
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.to_thread(gate.started.wait, 30)
    rest = [asyncio.create_task(batcher.submit(i)) for i in items]
    await asyncio.sleep(0)  # each submit runs up to its queue.put
    return gate, batcher, [first, *rest]


async def test_jobs_waiting_for_a_busy_worker_run_as_one_batch() -> None:
    gate, batcher, tasks = await behind_a_busy_worker((2, 3, 4))
    gate.release.set()
    assert [await t for t in tasks] == [10, 20, 30, 40]
    assert gate.seen == [[1], [2, 3, 4]]
    assert batcher.batches == [1, 3]
    await asyncio.to_thread(batcher.close)


async def test_a_cancelled_job_is_left_out_and_failures_stay_with_their_job() -> None:
    gate, batcher, (first, dropped, failing, kept) = await behind_a_busy_worker((2, -3, 4))
    dropped.cancel()
    await asyncio.sleep(0)
    gate.release.set()
    assert await first == 10
    with pytest.raises(ValueError, match="bad -3"):
        await failing
    assert await kept == 40
    assert dropped.cancelled()
    assert gate.seen == [[1], [-3, 4]]
    await asyncio.to_thread(batcher.close)


async def test_closing_cancels_what_waits_and_finishes_what_runs() -> None:
    gate, batcher, (running, waiting) = await behind_a_busy_worker((2,))
    closing = asyncio.create_task(asyncio.to_thread(batcher.close))
    with pytest.raises(asyncio.CancelledError):
        await waiting  # cancelled by close() while the worker still holds the first batch
    assert not closing.done()  # it waits for the running batch
    gate.release.set()
    await closing
    assert await running == 10
    assert gate.seen == [[1]]


async def test_batches_are_capped() -> None:
    gate, batcher, tasks = await behind_a_busy_worker((2, 3, 4, 5, 6), max_batch=2)
    gate.release.set()
    await asyncio.gather(*tasks)
    assert batcher.batches == [1, 2, 2, 1]
    await asyncio.to_thread(batcher.close)
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(7)


def test_settings_choose_workers_and_threads(tmp_path: Path) -> None:
    options = provider_options("whisper", Settings(data_dir=tmp_path, asr_workers=3, asr_threads=2, asr_max_batch=4))
    assert (options["num_workers"], options["cpu_threads"], options["max_batch"]) == (3, 2, 4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_packaged_model(tmp_path_factory.mktemp("whisper"))


async def test_a_batch_gives_the_words_of_one_at_a_time(model_dir: Path) -> None:
    clips = [speak(s, voice=v) for s, v in zip(SENTENCES[:8], ["en-us", "en-gb"] * 4, strict=True)]
    prompts = [None, "A question.", None, None, "Weather talk.", None, None, None]
    single = WhisperASR(cache_dir=model_dir, max_batch=1)
    batched = WhisperASR(cache_dir=model_dir, num_workers=1, max_batch=8)
    try:
        await single.load(warm=False)
        await batched.load(warm=False)
        alone = [(await single.transcribe(c, prompt=p)).text for c, p in zip(clips, prompts, strict=True)]
        # A long utterance keeps the worker busy while the eight queue up behind it.
        busy = asyncio.create_task(batched.transcribe(np.concatenate([speak(s) for s in SENTENCES[8:11]])))
        await asyncio.sleep(0.01)
        together = await asyncio.gather(*(batched.transcribe(c, prompt=p) for c, p in zip(clips, prompts, strict=True)))
        await busy
    finally:
        await single.aclose()
        await batched.aclose()
    assert [t.text for t in together] == alone
    assert all(text for text in alone)
    assert max(batched.batch_sizes) >= 4  # the eight shared CTranslate2 calls
    assert sum(batched.batch_sizes) == 9
    assert set(single.batch_sizes) == {1}


async def test_a_batch_with_the_language_to_detect_is_transcribed_one_by_one(model_dir: Path) -> None:
    """Detection is per utterance, so such a batch takes the single path (it used to fail building a
    tokenizer for language None: every waiting turn of every chat got 'transcription failed')."""
    clips = [speak(s) for s in SENTENCES[:3]]
    detecting = WhisperASR(cache_dir=model_dir, language=None, num_workers=1, max_batch=8)
    try:
        await detecting.load(warm=False)
        busy = asyncio.create_task(detecting.transcribe(np.concatenate([speak(s) for s in SENTENCES[8:10]])))
        await asyncio.sleep(0.01)
        together = await asyncio.gather(*(detecting.transcribe(c) for c in clips))
        await busy
    finally:
        await detecting.aclose()
    assert max(detecting.batch_sizes) >= 2  # they did wait together
    assert all(t.text and t.language == "en" for t in together)
