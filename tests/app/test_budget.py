"""app.budget: decodes reserve their bytes; what does not fit waits for room."""

from __future__ import annotations

import threading
import time

import pytest

from app import budget as budget_module
from app.budget import MemoryBudget


def test_a_reservation_that_does_not_fit_waits_for_room() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with budget.reserve(70):
            first_in.set()
            time.sleep(0.2)
            order.append("first done")

    def second() -> None:
        first_in.wait()
        with budget.reserve(50):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["first done", "second in"]
    assert budget.used == 0


def test_what_fits_runs_together() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(40), budget.reserve(60):
        assert budget.used == 100


def test_a_reservation_larger_than_the_budget_runs_alone() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(10_000):
        assert budget.used == 100
    assert budget.used == 0


def test_memory_is_given_back_when_the_last_decode_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(budget_module, "give_back_memory", lambda: calls.append(1))
    budget = MemoryBudget(100)
    with budget.reserve(30):
        with budget.reserve(30):
            pass
        assert calls == []  # one decode still holds its pixels
    assert calls == [1]


def test_give_back_memory_runs_here() -> None:
    budget_module.give_back_memory()  # glibc's malloc_trim on Linux, a no-op elsewhere: never raises
