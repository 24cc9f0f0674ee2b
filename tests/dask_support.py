"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on loopback.

:func:`dask_cluster` starts the scheduler and ``workers`` single-threaded workers, each
its own process group on 127.0.0.1, waits until they joined, yields the scheduler's
address, and stops every one of them (SIGTERM, then SIGKILL) however the block ends; they
also get SIGTERM if the test process dies (``lifeline``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from wslab.harness import lifeline

BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0


def _group(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    # tied to the test process: a pytest killed outright leaves no cluster behind
    with open(log, "wb") as handle:
        return lifeline.popen(cmd, stdout=handle, stderr=subprocess.STDOUT,
                              start_new_session=True, death_signal=signal.SIGTERM)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2) -> Iterator[str]:
    """The address of a scheduler with ``workers`` workers joined, for the block."""
    info = folder / "scheduler.json"
    procs = [_group([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)],
                    folder / "scheduler.log")]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info.exists() or not info.read_text().strip():
            assert procs[0].poll() is None, (folder / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for n in range(workers):
            procs.append(_group([str(BIN / "dask"), "worker", address, "--nworkers", "1",
                                 "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                 "--local-directory", str(folder / f"w{n}")],
                                folder / f"worker{n}.log"))
        from distributed import Client

        with Client(address, timeout=START_TIMEOUT_S, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        yield address
    finally:
        _stop(procs)
