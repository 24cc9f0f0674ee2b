"""Keeping a server's long-lived connection objects out of Python's full GC scans.

What lives here: :class:`GcFreezer`, a small policy the scale worker runs beside its server,
and :class:`GcPauses`, which times every full collection so a run reports what they cost.
What must not live here: anything about sockets or messages.

Why: CPython's cyclic collector runs a full (generation 2) collection once the objects that
survived into the old generation grow by a quarter, and a full collection walks every
tracked object. A worker holding 10,000 websockets connections tracks roughly 90 objects per
connection, about 900,000 in all; on this machine one full walk then takes 0.3-0.4 s, and
the event loop sends nothing meanwhile: a broadcast that meets it is late by that much.
A 10k run times them (:class:`GcPauses`; ``benchmarks/bench_scale.py`` reports both): here
ten full collections, the longest 413 ms, against eight, the longest 75 ms, with the policy.

The policy (after the ``gc.freeze()`` practice of large Python web services):

========================================  ===============================================
when                                      then
========================================  ===============================================
held connections grew by ``grow`` (5 %)   collect the young generations (cheap), then
since the last freeze (and by >= 50)      ``gc.freeze()``: what is alive now leaves the
                                          scans; later full collections see only the rest
connections closed since the last full    ``gc.unfreeze()`` and one full collection, so
collection pass ``churn`` (25 %) of       cycles left by closed connections are reclaimed
those held then                           (the one pause, paid at a time of churn)
========================================  ===============================================

Frozen garbage is possible (a cycle that was already unreachable in the old generation when
it froze) but bounded by the churn rule: it is collected at the next unfreeze.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class GcFreezer:
    """Freeze the heap as connections accumulate; thaw and collect after heavy churn.

    Args:
        held: How many connections the server holds now.
        closed_total: How many connections have closed since the server started.
        grow: Growth of held connections, as a fraction, that triggers a freeze.
        churn: Closes since the last full collection, as a fraction of the connections held
            then, that trigger a thaw and full collection.
        check_s: How often to look.
    """

    held: Callable[[], int]
    closed_total: Callable[[], int]
    grow: float = 0.05
    churn: float = 0.25
    check_s: float = 0.25
    min_step: int = 50
    """Fewest connections a freeze or a thaw waits for."""
    freezes: int = 0
    thaws: int = 0
    _frozen_at: int = 0
    _closed_at_collect: int = 0
    _held_at_collect: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def step(self) -> str | None:
        """Apply the policy once; return what it did (``freeze``, ``thaw``) or None."""
        held, closed = self.held(), self.closed_total()
        closed_since = closed - self._closed_at_collect
        if self.freezes and closed_since >= max(self.min_step,
                                               self.churn * self._held_at_collect):
            gc.unfreeze()
            gc.collect()
            self.thaws += 1
            self._closed_at_collect, self._held_at_collect = closed, held
            self._frozen_at = 0
            return "thaw"
        if held - self._frozen_at >= max(self.min_step, self.grow * self._frozen_at):
            gc.collect(1)
            gc.freeze()
            self.freezes += 1
            self._frozen_at = held
            self._held_at_collect = max(self._held_at_collect, held)
            return "freeze"
        return None

    async def run(self) -> None:
        """Apply the policy every ``check_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.check_s)
            self.step()

    def start(self) -> None:
        """Run in the background on the current loop."""
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop; everything frozen goes back to the collector."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.freezes:
            gc.unfreeze()

    def snapshot(self) -> dict[str, int]:
        """Counters for the worker's stats."""
        return {"gc_freezes": self.freezes, "gc_thaws": self.thaws,
                "gc_frozen_objects": gc.get_freeze_count()}


@dataclass
class GcPauses:
    """Times CPython's full (generation 2) collections while installed.

    The event loop runs nothing during a collection, so the longest one is a floor under
    the worst latency of anything the process sends meanwhile.
    """

    full: int = 0
    total_s: float = 0.0
    longest_s: float = 0.0
    _began: float = field(default=0.0, repr=False)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        self.full += 1
        self.total_s += took
        self.longest_s = max(self.longest_s, took)

    def start(self) -> None:
        """Start timing."""
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        """Stop timing."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def snapshot(self) -> dict[str, float]:
        """Full collections so far, their total and longest pause in ms."""
        return {"full_collections": self.full, "full_total_ms": round(1e3 * self.total_s, 3),
                "full_longest_ms": round(1e3 * self.longest_s, 3)}
