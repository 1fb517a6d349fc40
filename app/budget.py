"""A budget of bytes that decodes on a worker's threads reserve before they start.

Decoding an upload holds its pixels (and their grey copies) until it is done; the budget bounds
what a worker's concurrent decodes hold together, whatever the images: a decode that does not fit
waits on its thread until others finish. A reservation larger than the whole budget is cut to the
budget, so it runs alone rather than never. When the last decode holding a reservation finishes,
the C allocator is asked to hand its free pages back to the system (glibc's `malloc_trim`): what
a large decode freed in the middle of the heap would otherwise stay in the worker's RSS."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _malloc_trim() -> Callable[[], object]:
    """glibc's `malloc_trim(0)`, or a no-op where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


give_back_memory = _malloc_trim()


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
                idle = self.used == 0
                self._changed.notify_all()
            if idle:
                give_back_memory()


#: A worker's resident memory, measured (README.md, "Reliability"): about this much at rest (torch, the
#: app, the model) ...
REST_MB = 300
#: ... plus its working copies beside the budgeted decodes.
SPARE_MB = 40


def worker_memory_bound_mb(work_memory_mb: int) -> int:
    """The most a worker holds: at rest, DIGITS_WORK_MEMORY_MB of decodes and working copies
    (500 MB with the default 160; README.md, "Reliability"). Deployment limits
    are this times the workers (deploy/k8s, checked by tests/test_k8s.py)."""
    return REST_MB + work_memory_mb + SPARE_MB
