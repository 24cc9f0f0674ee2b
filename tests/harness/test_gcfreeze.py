"""The GC freeze policy of the scale worker."""

from __future__ import annotations

import asyncio
import gc
import weakref

from wslab.harness.gcfreeze import GcFreezer


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freezes_on_growth_thaws_on_churn_and_collects_what_closed() -> None:
    state = {"held": 0, "closed": 0}
    freezer = GcFreezer(lambda: state["held"], lambda: state["closed"], min_step=10)
    try:
        assert freezer.step() is None  # nothing held yet
        state["held"] = 100
        keep = [_Cycle() for _ in range(100)]  # the connections' objects
        assert freezer.step() == "freeze"
        assert gc.get_freeze_count() >= 100
        assert freezer.step() is None  # no growth since
        state["held"] = 104
        assert freezer.step() is None  # under 5 % and under min_step
        state["held"] = 120
        assert freezer.step() == "freeze"
        assert freezer.freezes == 2
        # A quarter of those connections close; their cycles were frozen alive.
        gone = [weakref.ref(c) for c in keep[:30]]
        del keep[:30]
        gc.collect()
        assert all(r() is not None for r in gone)  # frozen: a full collection skips them
        state["held"], state["closed"] = 90, 30
        assert freezer.step() == "thaw"
        assert gc.get_freeze_count() == 0
        assert all(r() is None for r in gone)  # thawed and collected
        assert all(isinstance(c, _Cycle) for c in keep) and len(keep) == 70
        assert freezer.thaws == 1
        assert freezer.step() == "freeze"  # what survived freezes again
        assert freezer.snapshot()["gc_freezes"] == 3
    finally:
        gc.unfreeze()


def test_runs_in_the_background_and_stop_unfreezes() -> None:
    async def main() -> None:
        held = {"n": 0}
        freezer = GcFreezer(lambda: held["n"], lambda: 0, check_s=0.01, min_step=1)
        freezer.start()
        held["n"] = 5
        for _ in range(100):
            if freezer.freezes:
                break
            await asyncio.sleep(0.01)
        assert freezer.freezes >= 1
        assert gc.get_freeze_count() > 0
        await freezer.stop()
        assert gc.get_freeze_count() == 0

    try:
        asyncio.run(main())
    finally:
        gc.unfreeze()


def test_full_collections_are_timed_and_only_while_installed() -> None:
    from wslab.harness.gcfreeze import GcPauses

    pauses = GcPauses()
    gc.collect()  # not installed yet: not counted
    pauses.start()
    try:
        gc.collect(1)  # a young collection: not a full one
        gc.collect()
        gc.collect()
    finally:
        pauses.stop()
    gc.collect()  # removed again: not counted
    snap = pauses.snapshot()
    assert snap["full_collections"] == 2
    assert 0 < snap["full_longest_ms"] <= snap["full_total_ms"]
