"""Request deadlines, one watchdog a worker (app/middleware.py enforces `DIGITS_REQUEST_TIMEOUT` with it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Deadlines:
    """Request deadlines for one worker, enforced by one watchdog task rather than a timer a request
    (asyncio.timeout's arming and disarming cost more: bench/LOG.md, "Deadlines").

    A request costs a dict entry; while any are in flight, a watchdog wakes every `period` seconds
    and cancels the requests past their deadline, which therefore fire up to `period` late."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.period = min(0.25, max(0.01, seconds / 4))
        self._entries: dict[asyncio.Task[Any], list[Any]] = {}  # task -> [deadline, expired]
        self._watchdog: asyncio.Task[None] | None = None

    def start(self, task: asyncio.Task[Any]) -> list[Any]:
        """Track `task`'s deadline; the returned entry's [1] becomes True if it expires."""
        entry = [time.monotonic() + self.seconds, False]
        self._entries[task] = entry
        loop = asyncio.get_running_loop()
        if self._watchdog is None or self._watchdog.done() or self._watchdog.get_loop() is not loop:
            self._watchdog = loop.create_task(self._watch())  # (an app can outlive one event loop: tests)
        return entry

    def end(self, task: asyncio.Task[Any]) -> None:
        self._entries.pop(task, None)

    async def _watch(self) -> None:
        while self._entries:
            await asyncio.sleep(self.period)
            now = time.monotonic()
            for task, entry in list(self._entries.items()):
                if not entry[1] and now >= entry[0]:
                    entry[1] = True
                    task.cancel()
