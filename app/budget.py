"""A budget of bytes that decodes on a worker's threads reserve before they start.

Decoding an upload holds its pixels (and their grey copies) until it is done; the budget bounds
what a worker's concurrent decodes hold together, whatever the images: a decode that does not fit
waits on its thread until others finish. A reservation larger than the whole budget is cut to the
budget, so it runs alone rather than never."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class MemoryBudget:
    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        size = min(size, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.used + size <= self.total)
            self.used += size
        try:
            yield
        finally:
            with self._changed:
                self.used -= size
                self._changed.notify_all()
