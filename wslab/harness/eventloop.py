"""Which event loop a wslab process runs on.

What lives here: :func:`run_fast`, the one place that decides a process's event loop:
uvloop (libuv's loop, its read and write paths in C) where it is installed, asyncio's own
otherwise. What must not live here: anything a process does on the loop.

Who runs on it: the processes that are the instrument or the system under test at scale
(the load client, the scale holders and workers, ``procs server``). Per message or per
connection event they spend less CPU on uvloop than on asyncio's selector loop (the
figures, measured side by side, are in docs/performance.md: ``harness`` and ``scale``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOP_VARIABLE = "WSLAB_EVENT_LOOP"
"""Environment variable: ``asyncio`` runs every wslab process on asyncio's own loop."""


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop if it is installed, else on asyncio's loop
    (also when the environment says ``WSLAB_EVENT_LOOP=asyncio``, for a side-by-side run)."""
    if os.environ.get(LOOP_VARIABLE) == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop wheels
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
