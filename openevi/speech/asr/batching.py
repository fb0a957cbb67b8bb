"""Worker threads that run queued jobs together: whatever is waiting when a worker frees up goes in
one batch (up to `max_batch`). Nothing waits to fill a batch, so an idle server answers one request as
fast as before, and a busy one pays the model's fixed costs once per batch instead of once per chat."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Batcher"]

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Job(Generic[In, Out]):
    item: In
    future: Future[Out]


class Batcher(Generic[In, Out]):
    """`workers` threads, each running `run_batch` on up to `max_batch` queued items at a time; what
    is waiting is shared with the workers that are idle, so one batch does not hold every job.

    `run_batch` gets the items in arrival order and returns one result or exception per item.
    A job cancelled before its batch starts is left out of it."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[In]], Sequence[Out | BaseException]],
        *,
        workers: int,
        max_batch: int,
        name: str,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max(1, max_batch)
        self._queue: queue.SimpleQueue[_Job[In, Out] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(max(1, workers))
        ]
        self._started = False
        self._closed = False
        self._idle = 0  # workers waiting for a job
        self._lock = threading.Lock()
        self.batches: list[int] = []  # the size of every batch run, newest last (bounded)

    async def submit(self, item: In) -> Out:
        """Queue `item`; cancelling the caller drops it if its batch has not started yet."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        self._start()
        future: Future[Out] = Future()
        self._queue.put(_Job(item, future))
        return await asyncio.wrap_future(future)

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                for thread in self._threads:
                    thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            first = self._queue.get()
            with self._lock:
                self._idle -= 1
                # Share what waits with the idle workers rather than run it all on this thread.
                take = min(self._max_batch, 1 + -(-self._queue.qsize() // (1 + self._idle)))
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < take:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if live:
                self._run(live)
            if stop:
                return

    def _run(self, jobs: list[_Job[In, Out]]) -> None:
        self.batches = [*self.batches[-999:], len(jobs)]
        try:
            results = self._run_batch([job.item for job in jobs])
        except BaseException as exc:  # handed to every caller of the batch
            for job in jobs:
                job.future.set_exception(exc)
            return
        for job, result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    def close(self) -> None:
        """Cancel the queued jobs, let running batches finish, stop the workers (blocking: call it off
        the event loop)."""
        with self._lock:
            self._closed = True
            started, self._started = self._started, True
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        if not started:
            return
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
