"""TaskScope: the one owner of every task a chat starts, so that none outlives the chat.

Why not `asyncio.TaskGroup`: a group lives inside one `async with` block of one task, but a chat is
started by its transport's task and closed by whichever comes first — the transport, a timeout, a
hang-up, key revocation, the sweeper or shutdown — often from inside one of the chat's own tasks.
A TaskGroup would also cancel every sibling when one task fails; here one failed task is logged and
the others go on (a failed turn is answered with `error` + `assistant_end` by its owner).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("openevi.chat.tasks")

T = TypeVar("T")


class TaskScope:
    """Spawn tasks; `aclose()` cancels and awaits all of them (but the caller's own)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        # Context the tasks start from (a copy each), e.g. with the chat's trace span current; None: the caller's.
        self.context: contextvars.Context | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, work: Coroutine[Any, Any, T], *, name: str, log_failure: bool = True) -> asyncio.Task[T]:
        """Run `work` as a task of this scope. A failure is logged unless the caller reads it itself
        (`log_failure=False`). Once the scope is closed the task is cancelled before it starts."""
        task = asyncio.create_task(work, name=name, context=self.context.copy() if self.context else None)
        if self._closed:
            task.cancel()
            return task
        self._tasks.add(task)
        task.add_done_callback(self._finished if log_failure else self._tasks.discard)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: task %s failed", self.name, task.get_name(), exc_info=exc)

    def running(self) -> list[asyncio.Task[Any]]:
        """The scope's tasks that have not finished yet."""
        return [t for t in self._tasks if not t.done()]

    async def aclose(self) -> None:
        """Close the scope: cancel every task and wait until each has finished.

        The task calling this (a timeout watcher or a hang-up closing its own chat) is skipped: it
        cannot await itself, and it finishes when it returns from closing."""
        self._closed = True
        current = asyncio.current_task()
        while others := [t for t in self._tasks if t is not current and not t.done()]:
            for task in others:
                task.cancel()
            await asyncio.wait(others)
