"""Scheduling for the lab panels: debounced re-runs and cancellable background tasks.

What lives here: :class:`Debouncer`, which turns a burst of slider events into one run of
a (possibly slow) computation off the kernel's event loop, always ending on the newest
value; and :class:`TaskRunner`, which starts one long ``asyncio`` job at a time (a
heatmap, later a live run), reports its progress through a :class:`Progress` handle and
can cancel it.

Both work inside a Jupyter kernel (whose asyncio loop is running while widget events are
handled) and outside one: with no running loop, the debouncer runs the work at once, so
plain scripts and unit tests see results synchronously. Nothing here imports ipywidgets;
the panels wire these objects to widgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# One worker thread for every panel: runs never overlap, so two panels never fight over
# the CPU and a run always sees a consistent snapshot of its inputs.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wslab-lab")


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running in this thread, or ``None`` outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(slots=True)
class RunTiming:
    """How long one debounced run took, in seconds.

    Attributes:
        requested: Monotonic time of the last trigger the run answers.
        compute_s: Time spent in the compute step (worker thread).
        apply_s: Time spent applying the result (loop thread: figure updates).
        total_s: From the last trigger to the end of apply, including the debounce delay.
    """

    requested: float
    compute_s: float
    apply_s: float
    total_s: float


class Debouncer(Generic[T]):
    """Run ``compute`` then ``apply`` once a burst of triggers has settled.

    ``compute`` takes no arguments and returns a result; it runs in a worker thread so
    the kernel keeps serving widget messages meanwhile (it must not touch widgets).
    ``apply`` receives the result on the loop's thread and may update widgets. A trigger
    that arrives while a run is in flight marks the result stale: the run's result is
    still applied (the user sees progress) and one more run follows with the newest
    inputs.

    Args:
        compute: The slow part (simulate, analyse).
        apply: The fast part (update figures), called with ``compute``'s result.
        delay_s: Quiet time after the last trigger before a run starts.
        on_error: Called with an exception raised by ``compute`` or ``apply``.
        on_busy: Called with ``True`` when a run is asked for (the panel shows
            "computing...") and ``False`` once the newest inputs are drawn or failed.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        apply: Callable[[T], None],
        *,
        delay_s: float = 0.05,
        on_error: Callable[[BaseException], None] | None = None,
        on_busy: Callable[[bool], None] | None = None,
    ) -> None:
        self.compute = compute
        self.apply = apply
        self.delay_s = delay_s
        self.on_error = on_error
        self.on_busy = on_busy
        self._shown_busy = False
        self.timings: list[RunTiming] = []
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stale = False
        self._requested = 0.0

    @property
    def busy(self) -> bool:
        """True while a run is scheduled or in flight."""
        return self._handle is not None or (self._task is not None and not self._task.done())

    def trigger(self) -> None:
        """Ask for a run with the current inputs (synchronous without a running loop)."""
        self._requested = time.perf_counter()
        loop = running_loop()
        if loop is None or self.delay_s < 0:
            self.run_now()
            return
        self._busy(True)
        if self._task is not None and not self._task.done():
            self._stale = True
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_later(self.delay_s, self._start, loop)

    def flush(self) -> None:
        """Drop a scheduled run and run now instead (programmatic changes: no lag)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.run_now()

    def run_now(self) -> None:
        """Compute and apply in the calling thread, now."""
        requested = self._requested or time.perf_counter()
        t0 = time.perf_counter()
        try:
            result = self.compute()
            t1 = time.perf_counter()
            self.apply(result)
        except Exception as exc:  # shown in the panel, never raised into the kernel loop
            self._busy(False)
            self._report(exc)
            return
        t2 = time.perf_counter()
        self.timings.append(RunTiming(requested, t1 - t0, t2 - t1, t2 - requested))
        if self._task is None or self._task.done():
            self._busy(False)

    async def wait(self) -> None:
        """Return once no run is scheduled or in flight (for tests and benchmarks)."""
        while self.busy:
            if self._task is not None and not self._task.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._task)
            else:
                await asyncio.sleep(self.delay_s / 4 or 0.001)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self._task = loop.create_task(self._run(loop))

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            self._stale = False
            requested = self._requested
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(_EXECUTOR, self.compute)
                t1 = time.perf_counter()
                self.apply(result)
            except Exception as exc:
                self._busy(False)
                self._report(exc)
                return
            t2 = time.perf_counter()
            self.timings.append(RunTiming(requested, t1 - t0, t2 - t1, t2 - requested))
            if not self._stale:
                if self._handle is None:
                    self._busy(False)
                return

    def _busy(self, busy: bool) -> None:
        if busy != self._shown_busy and self.on_busy is not None:
            self._shown_busy = busy
            self.on_busy(busy)

    def _report(self, exc: BaseException) -> None:
        if self.on_error is None:
            raise exc
        self.on_error(exc)


@dataclass(slots=True)
class Progress:
    """What a background job reports: steps done out of a total, and a short note."""

    total: int = 0
    done: int = 0
    note: str = ""
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)

    def start(self, total: int, note: str = "") -> None:
        """Begin counting ``total`` steps."""
        self.total, self.done, self.note = total, 0, note
        self._notify()

    def step(self, n: int = 1, note: str | None = None) -> None:
        """Count ``n`` more steps done."""
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        if note is not None:
            self.note = note
        self._notify()

    @property
    def fraction(self) -> float:
        """Share of the steps done, 0..1 (0 before :meth:`start`)."""
        return self.done / self.total if self.total else 0.0

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)


JobFactory = Callable[[Progress], Awaitable[Any]]


class TaskRunner:
    """Runs one background ``asyncio`` job at a time, with progress and cancellation.

    A job is an ``async`` function taking a :class:`Progress`; it should ``await``
    between steps (e.g. ``await loop.run_in_executor(...)`` for CPU work, or the live
    harness's own awaits), which is where cancellation lands.

    Args:
        on_progress: Called on the loop thread with the job's progress after every step.
        on_state: Called with ``"running"``, ``"done"``, ``"cancelled"`` or ``"failed"``
            and the job's result or exception (``None`` for the others).
    """

    def __init__(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        on_state: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.on_state = on_state
        self.task: asyncio.Task[Any] | None = None
        self.progress = Progress()
        self.state = "idle"

    @property
    def running(self) -> bool:
        """True while a job is in flight."""
        return self.task is not None and not self.task.done()

    def start(self, job: JobFactory, *, name: str = "wslab-lab-job") -> asyncio.Task[Any]:
        """Start ``job`` on the running loop; a job already running is cancelled first.

        Raises:
            RuntimeError: No asyncio loop is running in this thread (outside a kernel,
                use :meth:`run` instead).
        """
        loop = running_loop()
        if loop is None:
            raise RuntimeError("no running asyncio loop: start jobs from a Jupyter kernel")
        self.cancel()
        self.progress = Progress()
        if self.on_progress is not None:
            self.progress.listeners.append(self.on_progress)
        self._set_state("running", None)
        self.task = loop.create_task(self._guard(job, self.progress), name=name)
        return self.task

    def run(self, job: JobFactory) -> Any:
        """Run ``job`` to the end in this thread (scripts; no running loop allowed)."""
        progress = Progress()
        if self.on_progress is not None:
            progress.listeners.append(self.on_progress)
        self.progress = progress
        self._set_state("running", None)
        return asyncio.run(self._guard(job, progress))

    def cancel(self) -> bool:
        """Cancel the running job; True if there was one."""
        if self.running:
            assert self.task is not None
            self.task.cancel()
            return True
        return False

    async def _guard(self, job: JobFactory, progress: Progress) -> Any:
        try:
            result = await job(progress)
        except asyncio.CancelledError:
            self._set_state("cancelled", None)
            raise
        except Exception as exc:
            self._set_state("failed", exc)
            return None
        self._set_state("done", result)
        return result

    def _set_state(self, state: str, payload: Any) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(state, payload)


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking function in the lab's worker thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, fn, *args)
