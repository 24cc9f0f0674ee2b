"""Sweeps on Dask: a real scheduler and two real workers, each its own process on loopback.

What is checked: the table of a sweep on the cluster is the table of a local sweep with the
same seed and space (every column no clock can move); the trace reaches each worker once
however many chunks it runs; an interrupted cluster sweep resumes without re-running what
finished; bad or silent addresses fail in one line; a LocalCluster's workers die with the
process that started it, even when that process is killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dask_support import dask_cluster as start_dask

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import dask_cluster
from wslab.harness.dask_cluster import parse_cluster
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace
from wslab.tune.canonical import plan_points
from wslab.tune.space import Space
from wslab.tune.sweep import chunk_plan, run_sweep, trace_loads
from wslab.tune.sweep_dask import dask_runner

pytest.importorskip("distributed", reason="Dask distributed is a dev dependency")

DATA = Path(__file__).resolve().parents[2] / "data"
SPACE = {
    "batching.strategy": ["none", "time"],
    "batching.interval_ms": [5, 20],
    "compression.server_max_window_bits": [9, 12],
    "compression.policy": ["always", "adaptive"],
}
# The simulator charges each message the codec CPU time it measures (so latency moves
# with it): these differ between any two runs, local or not. Everything else is exact.
MEASURED = ("cpu_us_per_msg", "vs_always_cpu_us_per_msg", "latency_p50_ms", "latency_p90_ms",
            "latency_p95_ms", "latency_p99_ms", "latency_max_ms")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; their address."""
    with start_dask(tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    full = read_trace(DATA / "mixed.jsonl.zst")
    path = tmp_path_factory.mktemp("trace") / "t.jsonl"
    write_trace(Trace(full.messages[:2500], full.meta), path)
    return path


def _exact(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in MEASURED if c in table.columns])


def test_a_sweep_on_the_cluster_gives_the_local_table(scheduler: str, small: Path,
                                                       tmp_path: Path) -> None:
    points = Space.from_dict(SPACE).grid()
    base = TuningConfig().updated({"link.profile": "4g"})
    local = run_sweep(small, points, tmp_path / "local.parquet", base=base, seed=3, workers=2)
    with dask_runner(scheduler) as runner:
        assert runner.workers == 2
        chunks = chunk_plan(plan_points(points, base), base, runner.workers)
        assert len(chunks) > runner.workers  # so a trace sent per task would show below
        remote = run_sweep(small, points, tmp_path / "remote.parquet", base=base, seed=3,
                           runner=runner)
        loads = runner.session.client.run(trace_loads)
    assert len(remote) == len(local) > 0
    pd.testing.assert_frame_equal(_exact(remote), _exact(local))
    assert set(MEASURED) & set(remote.columns)
    assert sorted(loads.values()) == [1, 1], loads  # once per worker, not per chunk
    assert pd.read_parquet(tmp_path / "remote.parquet").shape == remote.shape


def test_an_interrupted_cluster_sweep_resumes_where_it_stopped(scheduler: str, small: Path,
                                                                tmp_path: Path) -> None:
    points = Space.from_dict(SPACE).grid()
    out = tmp_path / "r.parquet"
    seen: list[tuple[int, int]] = []

    def stop_after_first(done: int, total: int) -> None:
        seen.append((done, total))
        if done > 0:
            raise KeyboardInterrupt

    with dask_runner(scheduler) as runner, pytest.raises(KeyboardInterrupt):
        run_sweep(small, points, out, seed=1, runner=runner, progress=stop_after_first)
    first = seen[-1][0]
    total = seen[-1][1]
    assert 0 < first < total
    assert not out.exists()  # no table until every point is in
    resumed: list[tuple[int, int]] = []
    with dask_runner(scheduler) as runner:
        table = run_sweep(small, points, out, seed=1, runner=runner,
                          progress=lambda d, t: resumed.append((d, t)))
    assert resumed[0] == (first, total)  # what finished before is not run again
    assert resumed[-1] == (total, total)
    local = run_sweep(small, points, tmp_path / "l.parquet", seed=1, workers=2)
    pd.testing.assert_frame_equal(_exact(table), _exact(local))


@pytest.mark.parametrize("text", ["foo", "http://127.0.0.1:8786", "tcp://127.0.0.1",
                                  "tcp://:8786", "tcp://127.0.0.1:notaport"])
def test_malformed_cluster_addresses_fail_in_one_line(text: str) -> None:
    with pytest.raises(WslabError, match="--cluster"):
        parse_cluster(text)


def test_local_and_addresses_parse() -> None:
    assert parse_cluster("local").local
    assert parse_cluster("tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"


def test_a_silent_scheduler_fails_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port that listens and never answers the protocol
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT_S", 2.0)
        start = time.monotonic()
        with pytest.raises(WslabError, match="no Dask scheduler answered"), \
                dask_runner(f"tcp://127.0.0.1:{port}"):
            pass
        assert time.monotonic() - start < 10


CHILD = textwrap.dedent("""
    import os, sys, time
    from wslab.tune.sweep_dask import dask_runner
    if __name__ == "__main__":
        with dask_runner("local", 2) as runner:
            pids = runner.session.client.run(os.getpid)
            print(" ".join(str(p) for p in pids.values()), flush=True)
            time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_local_cluster_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "Dask workers outlived a killed wslab"
