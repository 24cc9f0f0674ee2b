"""Scheduling tests: debounced re-runs off the loop, and cancellable background jobs.

The orderings these tests check must not depend on how busy the machine is: where one
event has to come before another, the test waits for the first (or leaves a margin of
tens of times the expected gap), never a bare sleep that a loaded machine can outlast.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import ipywidgets as W
import pytest

from wslab.config import TuningConfig
from wslab.lab import CompressionPanel, Panel
from wslab.lab.data import load_trace
from wslab.lab.tasks import Debouncer, Progress, TaskRunner


class CountingPanel(Panel[float]):
    """A panel whose 'simulation' sleeps and echoes the interval it saw."""

    title = "counting"

    def __init__(self, work_s: float = 0.0, **kwargs: Any) -> None:
        self.work_s = work_s
        self.computed: list[float] = []
        self.drawn: list[float] = []
        self.threads: list[str] = []
        super().__init__(load_trace("chat", messages=10), **kwargs)

    def build(self) -> None:
        self.bind(W.FloatSlider(min=0, max=100), "batching.interval_ms")

    def compute(self, config: TuningConfig, params: dict[str, Any]) -> float:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.work_s)
        self.computed.append(config.batching.interval_ms)
        return config.batching.interval_ms

    def draw(self, result: float) -> None:
        self.drawn.append(result)


def test_without_a_loop_runs_are_immediate() -> None:
    p = CountingPanel()
    p.controls["interval_ms"].value = 5
    p.set(interval_ms=6)
    assert p.computed == [16.0, 5.0, 6.0]
    assert p.drawn[-1] == 6.0


def test_set_from_code_redraws_before_returning_even_in_a_kernel() -> None:
    async def main() -> CountingPanel:
        p = CountingPanel(debounce_s=0.05)
        p.set(interval_ms=7)  # a loop is running, yet the result is there at once
        assert p.drawn[-1] == 7.0
        await asyncio.sleep(0.1)
        await p.debouncer.wait()
        return p

    p = asyncio.run(main())
    assert p.computed == [16.0, 7.0]  # no second, debounced run behind it


def test_a_burst_of_slider_events_gives_one_run_with_the_last_value() -> None:
    async def main() -> CountingPanel:
        # The quiet time is 250 times the gap between events: a loaded machine that
        # oversleeps a 2 ms gap many times over still delivers the burst as one.
        p = CountingPanel(debounce_s=0.5)
        await p.debouncer.wait()
        for v in range(1, 21):  # a drag: 20 events, 2 ms apart
            p.controls["interval_ms"].value = float(v)
            await asyncio.sleep(0.002)
        await p.debouncer.wait()
        return p

    p = asyncio.run(main())
    assert p.computed == [16.0, 20.0]
    assert p.drawn == [16.0, 20.0]
    # The first run draws before the panel is shown; the slider's run is off the loop.
    assert p.threads[1].startswith("wslab-lab")


def test_events_during_a_run_are_caught_up_once() -> None:
    async def main() -> CountingPanel:
        p = CountingPanel(work_s=1.0, debounce_s=0.01)
        await p.debouncer.wait()
        p.controls["interval_ms"].value = 1.0
        while len(p.threads) < 2:  # until the run for 1.0 is computing (for 1 s)
            await asyncio.sleep(0.001)
        for v in (2.0, 3.0, 4.0):
            p.controls["interval_ms"].value = v
            await asyncio.sleep(0.01)
        await p.debouncer.wait()
        return p

    p = asyncio.run(main())
    # initial run, the run for 1.0, then exactly one catch-up run with the newest value
    assert p.computed == [16.0, 1.0, 4.0]
    assert p.drawn[-1] == 4.0


def test_the_loop_keeps_serving_while_a_run_computes() -> None:
    work_s = 1.0

    async def main() -> list[float]:
        p = CountingPanel(work_s=work_s, debounce_s=0.0)
        await p.debouncer.wait()
        p.controls["interval_ms"].value = 2.0
        gaps: list[float] = []
        last = time.perf_counter()
        while 2.0 not in p.computed:  # the run is computing
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        await p.debouncer.wait()
        return gaps

    gaps = asyncio.run(main())
    # A run on the loop's thread would stall it for the whole run: one gap of work_s.
    # Off the loop, the loop beats on throughout; a loaded machine may stretch a 10 ms
    # beat many times over, but not to half the run.
    assert len(gaps) >= 3 and max(gaps) < work_s / 2, gaps


def test_compute_errors_reach_the_status_line() -> None:
    errors: list[BaseException] = []

    def bad() -> int:
        raise ValueError("boom")

    d: Debouncer[int] = Debouncer(bad, lambda _r: None, on_error=errors.append)
    d.trigger()
    assert [str(e) for e in errors] == ["boom"]


def test_task_runner_reports_progress_and_cancels() -> None:
    states: list[str] = []
    seen: list[int] = []

    async def job(progress: Progress) -> str:
        progress.start(100, "counting")
        for _ in range(100):
            await asyncio.sleep(0.02)  # 2 s in all: far longer than reaching the cancel
            progress.step()
        return "finished"

    async def main() -> asyncio.Task[Any]:
        runner = TaskRunner(on_progress=lambda p: seen.append(p.done),
                            on_state=lambda s, _x: states.append(s))
        task = runner.start(job)
        while not seen or seen[-1] == 0:  # until the job has made some progress
            await asyncio.sleep(0.005)
        assert runner.running
        assert runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not runner.running
        return task

    task = asyncio.run(main())
    assert task.cancelled()
    assert states == ["running", "cancelled"]
    assert 0 < seen[-1] < 100


def test_task_runner_runs_to_the_end_and_reports_failure() -> None:
    async def ok(progress: Progress) -> int:
        progress.start(2)
        progress.step()
        progress.step()
        return 42

    async def broken(progress: Progress) -> int:
        raise RuntimeError("harness not ready")

    states: list[tuple[str, Any]] = []
    runner = TaskRunner(on_state=lambda s, x: states.append((s, x)))
    assert runner.run(ok) == 42
    assert runner.progress.fraction == 1.0
    runner.run(broken)
    assert states[-1][0] == "failed" and "harness" in str(states[-1][1])
    with pytest.raises(RuntimeError, match="no running asyncio loop"):
        runner.start(ok)


def test_panel_heatmap_job_in_the_background_and_its_cancel_button(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WSLAB_FAST", "1")
    trace = load_trace("chat", messages=400)

    async def main() -> tuple[CompressionPanel, CompressionPanel]:
        done = CompressionPanel(trace)
        await done.debouncer.wait()
        await done.start_heatmap()
        cancelled = CompressionPanel(trace)
        await cancelled.debouncer.wait()
        task = cancelled.start_heatmap()
        await asyncio.sleep(0)
        assert not cancelled.cancel_button.disabled
        assert cancelled.progress.layout.visibility == "visible"
        cancelled.cancel_button.click()
        with pytest.raises(asyncio.CancelledError):
            await task
        return done, cancelled

    done, cancelled = asyncio.run(main())
    z = done.figures["heatmap"].data[0].z
    assert all(v is not None for row in z for v in row)
    assert done.progress.value == 9 and done.tasks.state == "done"
    assert cancelled.tasks.state == "cancelled"
    assert cancelled.status.value == "cancelled"
    assert cancelled.cancel_button.disabled
    assert cancelled.progress.layout.visibility == "hidden"
    assert cancelled.tasks.progress.done < 9
