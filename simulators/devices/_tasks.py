"""The background work of one simulated device: named tasks it owns, cancels and accounts for."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["TaskSet"]

logger = logging.getLogger(__name__)


class TaskSet:
    """Tasks a device starts from Bumble callbacks: flushes, RACP transfers, timers.

    Bumble calls back synchronously, from outside any task scope of ours, so a device keeps its
    tasks here rather than in a TaskGroup: `cancel_all` ends them when it stops, and a failure
    is kept in `errors` (and logged) instead of vanishing with its task.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start `coroutine` as a task named after the device and `name`."""
        task = asyncio.get_running_loop().create_task(coroutine, name=f"{self._prefix}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.errors.append(error)
            logger.debug("task_failed", exc_info=error, extra={"task": task.get_name()})

    async def settle(self) -> None:
        """Wait until no task is left (work that starts more work is waited for too)."""
        current = asyncio.current_task()
        while pending := [task for task in self._tasks if task is not current]:
            await asyncio.wait(pending)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
