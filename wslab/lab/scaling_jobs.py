"""The scaling panel's background runs: live processing, and the blocking scale layer.

What lives here: :func:`processing_run` (inbound messages through a live server's
processing queue, batched by type and then one by one) and :func:`run_in_thread`, which
runs a blocking scale-layer call (``run_scale``, ``run_storm``) in a thread with progress
and a cancel that still lets the scale layer stop every process it started
(:class:`RunCancelled`). What must not live here: the arithmetic
(``scaling_estimate.py``), the figures (``scaling_figures.py``), the measuring itself
(``wslab.harness``).

| button     | what runs in a thread (:func:`run_in_thread`)                          |
|------------|------------------------------------------------------------------------|
| Live run   | ``run_scale``: ramp, idle with heartbeats, broadcasts, direct messages |
| Storm      | ``run_storm``: more clients than ``max_connections``                   |
| Processing | :func:`processing_run`: a live server and one flooding client on the   |
|            | thread's own event loop, batched by type, then one message per call    |

On Cancel the job raises :class:`RunCancelled` at its next progress step (never during its
clean-up), and :func:`run_in_thread` returns only once the job has stopped all it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.client import LoadClient
from wslab.harness.events import ProcessingQueue
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace

from .tasks import Progress

T = TypeVar("T")


def processing_run(messages: list[Message], max_batch: int,
                   say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """``messages`` into a live server (room, one member: nothing comes back) from one
    flooding connection, handled by its processing queue with ``max_batch`` per call and
    then one per call; the queue's figures and the wall time of each run."""
    trace, config = Trace(messages), TuningConfig().updated({"compression.algorithm": "none"})

    async def once(batch: int) -> dict[str, Any]:
        queue = ProcessingQueue(max_batch=batch)
        async with LiveServer(config, scenario="room", trace=trace, processing=queue,
                              record=False) as server:
            started = time.perf_counter()
            await LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=trace,
                             speed=1e6, expect_s2c=0, drain_timeout=0.1).run()
            while queue.items < len(messages):
                if time.perf_counter() - started > 60:
                    raise WslabError(f"processing: {queue.items} of {len(messages)} handled")
                await asyncio.sleep(0.001)
            return {**queue.stats(), "wall_s": time.perf_counter() - started}

    out = {}
    for label, batch in (("batched", max_batch), ("one per call", 1)):
        say(f"processing {len(messages):,} messages, {label}")
        out[label] = asyncio.run(once(batch))
    return out


class RunCancelled(WslabError):
    """Raised inside a scale run's thread, at its next step, after Cancel."""


async def run_in_thread(fn: Callable[[Callable[[str], None]], T], progress: Progress,
                        steps: int) -> T:
    """Run a blocking scale-layer call in a thread; its messages become progress steps.

    ``fn`` receives the progress callback to hand to ``run_scale``/``run_storm``. The event
    loop stays free meanwhile. On cancellation the callback raises :class:`RunCancelled`
    at the run's next step (not during its clean-up), and this coroutine waits until the
    run has stopped every process it started before it re-raises the cancellation.

    Args:
        fn: Takes the callback, runs, returns the result.
        progress: The job's progress handle (one step per message).
        steps: Messages the run is expected to say (the progress bar's total).
    """
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    raised = threading.Event()

    def say(message: str) -> None:
        if not stop.is_set():
            loop.call_soon_threadsafe(progress.step, 1, message)
        elif not raised.is_set():  # the scale layer still stops all it started
            raised.set()
            raise RunCancelled("cancelled")

    progress.start(steps, progress.note)
    future = loop.run_in_executor(None, fn, say)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        while not future.done():  # the run stops what it started before we return
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: RunCancelled is expected, nothing to log
        raise
