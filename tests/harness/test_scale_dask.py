"""``wslab scale --cluster``: holders on Dask workers, their clocks measured and corrected.

A real ``dask scheduler`` and two ``dask worker`` processes on loopback (``dask_support``);
the servers run here as in any scale run. What is checked: 4,000 connections split over
the two workers (each holder ran under the Dask worker it names, on its own source
addresses) lose nothing; every holder's clock offset is estimated, small and consistent
with the one clock this machine has; the CLI prints the uncertainty beside the latency;
killing the coordinator leaves no holder running. The offset arithmetic is checked
against a fake clock with a known offset and lopsided delays.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from dask_support import dask_cluster
from services import needs

from wslab.cli import run as cli_run
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.clock import Offset, bracket, estimate
from wslab.harness.holder_relay import HolderSpec, run_holder
from wslab.harness.scale import ScaleOptions, run_scale
from wslab.harness.scale_dask import burst, shift_ready, shift_receipts

pytest.importorskip("distributed", reason="Dask distributed is a dev dependency")
needs_redis = needs("redis-server", "redis-server")

HOLDER_CMD = ("wslab.harness.procs", "holder")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


def _dask_worker_pids(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        return dict(client.run(os.getpid))


def _holders_under(pids: list[int]) -> dict[int, int]:
    """Holder processes running under the given processes: holder pid -> parent pid."""
    out: dict[int, int] = {}
    for pid in pids:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if all(part in cmd for part in HOLDER_CMD):
                out[child.pid] = child.ppid()
    return out


@needs_redis
def test_4000_connections_over_two_dask_workers_lose_nothing(scheduler: str) -> None:
    workers = _dask_worker_pids(scheduler)
    assert len(workers) == 2
    seen: dict[int, int] = {}

    def progress(message: str) -> None:
        if "idling" in message:  # ramp over, holders still running: who runs them?
            seen.update(_holders_under(list(workers.values())))

    n, casts, directs = 4000, 3, 12
    s = run_scale(TuningConfig(), ScaleOptions(
        connections=n, workers=2, broadcasts=casts, directs=directs, idle_s=0.5,
        broadcast_interval_s=0.3, cluster=scheduler), progress=progress).summary
    assert s["opened"] == n and s["failed"] == 0 and s["connections_lost"] == 0
    assert s["broadcast_receipts"] == n * casts
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["directs_sent"] == directs and s["directs_received"] == directs
    assert s["direct_routes"] == {"remote": directs}  # across the two server workers

    rows = s["clock_offsets"]
    assert [r["holder"] for r in rows] == [0, 1]
    # split over the two Dask workers, 2,000 each, each under the worker it names
    assert {r["worker"] for r in rows} == set(workers)
    assert [r["connections"] for r in rows] == [n // 2, n // 2]
    for r in rows:
        assert r["worker_pid"] == workers[r["worker"]]
        assert seen.get(r["pid"]) == r["worker_pid"], (r, seen)
    assert len(seen) == 2
    assert not set(rows[0]["sources"]) & set(rows[1]["sources"])  # each its own addresses
    assert all(a.startswith("127.0.0.") for r in rows for a in r["sources"])

    # One machine, one monotonic clock: the true offset is 0, so each estimate must be
    # within its uncertainty of 0; loopback round trips keep that uncertainty small.
    for r in rows:
        assert math.isfinite(r["offset_ms"]) and math.isfinite(r["drift_ms"])
        assert 0 < r["uncertainty_ms"] < 5, r
        assert abs(r["offset_ms"]) <= r["uncertainty_ms"] + 0.01, r
    worst = max(r["uncertainty_ms"] for r in rows)
    assert s["clock_uncertainty_ms"] == worst
    assert s["broadcast_latency_uncertainty_ms"] == worst  # both holders had broadcasts
    assert 0 < s["direct_latency_uncertainty_ms"] <= worst
    assert 0 < s["broadcast_latency_ms"]["p50"] <= s["broadcast_latency_ms"]["max"] < 10_000


def test_a_local_cluster_holds_and_leaves_nothing_running() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    s = run_scale(TuningConfig(), ScaleOptions(connections=200, broadcasts=2, directs=3,
                                               idle_s=0.2, cluster="local")).summary
    assert s["opened"] == 200 and s["broadcast_receipts"] == 400 and s["lost"] == 0
    rows = s["clock_offsets"]
    assert len({r["worker"] for r in rows}) == len(rows) == 2  # a LocalCluster of 2 cores
    assert all(abs(r["offset_ms"]) <= r["uncertainty_ms"] + 0.01 for r in rows)
    assert s["holder_broadcast_cpu_s"] is None  # not sampled: the holders are not ours
    time.sleep(1.0)
    # (multiprocessing's resource tracker, started once per process, stays by design)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before
            and p.status() != psutil.STATUS_ZOMBIE
            and "resource_tracker" not in " ".join(p.cmdline())]
    assert not left, [p.cmdline() for p in left]


def test_the_cli_prints_the_uncertainty_beside_each_latency(
        scheduler: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from wslab.cli import scale_cmd

    monkeypatch.setattr(scale_cmd, "out", Console(width=400, highlight=False))  # one line a row
    code = cli_run(["scale", "--cluster", scheduler, "-n", "200", "--broadcasts", "2",
                    "--directs", "3", "--idle", "0.2", "--broadcast-interval", "0.1"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("broadcast_latency_ms", "direct_latency_ms"):
        row = next(line for line in out.splitlines() if f" {name} " in line)
        assert len(re.findall(r"\d ± \d+\.\d{3}", row)) == 5, row  # p50 .. max, each ±
    assert len(re.findall(r"clock of holder \d", out)) == 2
    assert re.search(r"offset -?\d+\.\d{3} ± \d+\.\d{3} ms", out)


def test_more_holders_than_worker_threads_fail_at_once(scheduler: str) -> None:
    start = time.monotonic()
    with pytest.raises(WslabError, match=r"3 holders need 3 Dask worker threads.* has 2"):
        run_scale(TuningConfig(), ScaleOptions(connections=30, holders=3, cluster=scheduler))
    assert time.monotonic() - start < 20  # not after the callback timeout


@pytest.mark.parametrize("extra", [[], ["--storm"], ["--memory-matrix"]])
def test_a_malformed_or_misplaced_cluster_fails_in_one_line(
        extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    where = "local" if extra else "http://nowhere"
    code = cli_run(["scale", "--cluster", where, "-n", "10", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--cluster" in err, err


COORDINATOR = """
import sys
from wslab.cli import main
sys.argv = ["wslab", "scale", "--cluster", sys.argv[1], "-n", "100", "--idle", "300",
            "--broadcasts", "1", "--directs", "0"]
main()
"""


def test_killing_the_coordinator_leaves_no_holder_running(scheduler: str,
                                                           tmp_path: Path) -> None:
    workers = _dask_worker_pids(scheduler)
    script = tmp_path / "coordinator.py"
    script.write_text(COORDINATOR)
    proc = subprocess.Popen([sys.executable, str(script), scheduler], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    holders: dict[int, int] = {}
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"the coordinator ended early (exit {proc.wait(5)})"
            if "idling" in line:
                break
        holders = _holders_under(list(workers.values()))
        assert len(holders) == 2 and set(holders.values()) == set(workers.values())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and psutil.Process(
            p).status() != psutil.STATUS_ZOMBIE for p in holders):
        time.sleep(0.2)
    left = [p for p in holders if psutil.pid_exists(p)
            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"holders outlived a killed coordinator: {left}"
    assert not _holders_under(list(workers.values()))


def test_a_task_answers_the_clock_and_starts_no_holder_until_told() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        out: dict[str, Any] = {}
        spec = HolderSpec(index=0, url="ws://127.0.0.1:9/", config_yaml="{}", connections=5)
        task = threading.Thread(target=lambda: out.update(
            run_holder(listener.getsockname()[:2], "tok", spec)))
        task.start()
        listener.settimeout(10)
        conn, _peer = listener.accept()
        with conn, conn.makefile("rwb") as lines:
            conn.settimeout(10)
            hello = json.loads(lines.readline())
            assert hello["hello"] == "tok" and hello["index"] == 0
            assert hello["worker"] is None  # not on a Dask worker here
            sent = time.monotonic()
            lines.write(b'{"cmd": "clock"}\n')
            lines.flush()
            theirs = json.loads(lines.readline())["t"]
            assert sent <= theirs <= time.monotonic()  # this host's monotonic clock
            lines.write(b'{"cmd": "count"}\n')
            lines.flush()
            assert "not started yet" in json.loads(lines.readline())["error"]
            assert not _holders_under([os.getpid()])
        task.join(10)  # hung up before ``start``: no holder, the task returns
    assert not task.is_alive() and out["exit_code"] is None
    assert out["stderr"].startswith("not started")


# The offset arithmetic, against a clock whose truth the test knows.

class FakeRemote:
    """Our clock and a remote one ``offset`` s ahead, drifting ``drift`` s per s, with
    one-way delays drawn lopsided (the way out up to 20x slower than the way back)."""

    def __init__(self, offset: float, seed: int, drift: float = 0.0) -> None:
        self.now = 1000.0
        self.offset = offset
        self.drift = drift
        self.rng = random.Random(seed)
        self.round_trips: list[float] = []

    def true_offset(self) -> float:
        return self.offset + self.drift * (self.now - 1000.0)

    def ask(self) -> float:
        there, back = self.rng.uniform(0.0005, 0.004), self.rng.uniform(0.0001, 0.0002)
        self.round_trips.append(there + back)
        self.now += there
        theirs = self.now + self.true_offset()
        self.now += back
        return theirs

    def clock(self) -> float:
        return self.now


@pytest.mark.parametrize("seed", range(5))
def test_the_estimate_lies_within_its_uncertainty_of_a_known_offset(seed: int) -> None:
    remote = FakeRemote(offset=-3.25, seed=seed)
    got = estimate(remote.ask, remote.clock, rounds=20)
    assert abs(got.offset_s - remote.offset) <= got.uncertainty_s
    assert len(remote.round_trips) == 20
    assert got.uncertainty_s == pytest.approx(min(remote.round_trips) / 2)  # the fastest


def test_a_drifting_clock_stays_within_the_bracketed_uncertainty() -> None:
    remote = FakeRemote(offset=0.5, seed=7, drift=2e-4)  # 0.2 ms per second apart
    before = estimate(remote.ask, remote.clock)
    start = remote.now
    remote.now += 30.0  # the measured period
    truths = [remote.offset + remote.drift * (t - 1000.0)
              for t in (start, start + 15, remote.now)]
    after = estimate(remote.ask, remote.clock)
    both = bracket(before, after)
    assert both.drift_s == pytest.approx(after.offset_s - before.offset_s)
    assert both.uncertainty_s >= max(before.uncertainty_s, after.uncertainty_s) + 0.002
    for truth in truths:  # every moment of the period is covered
        assert abs(both.offset_s - truth) <= both.uncertainty_s


def test_times_move_onto_our_clock() -> None:
    ahead = Offset(5.0, 0.001)
    ready = {"event": "ready", "opened": 2, "failed": 0, "first_error": None,
             "started": 105.0, "done": [105.5, 106.0]}
    moved = shift_ready(ready, ahead)  # type: ignore[arg-type]
    assert (moved["started"], moved["done"]) == (100.0, [100.5, 101.0])
    report = {"receipts": [[0, "b", 0, 100.0, 105.002]], "alive": [0], "closed_early": 0,
              "close_codes": {}, "other_messages": 0}
    got = shift_receipts(report, ahead)  # type: ignore[arg-type]
    assert got["receipts"][0][:4] == [0, "b", 0, 100.0]
    assert got["receipts"][0][4] == pytest.approx(100.002)  # 2 ms, not 5,002


class AheadHolder:
    """A stand-in holder whose clock reads 7 s ahead of ours."""

    what = "holder 0 on a fake host"

    def ask(self, command: Any, timeout: float = 60.0) -> dict[str, Any]:
        return {"t": time.monotonic() + 7.0}


def test_a_burst_finds_a_holder_clock_seven_seconds_ahead() -> None:
    got = burst(AheadHolder())  # type: ignore[arg-type]
    assert abs(got.offset_s - 7.0) <= got.uncertainty_s + 1e-6
    assert got.uncertainty_s < 0.005


def test_an_answer_without_a_time_fails_in_one_line() -> None:
    class Mute(AheadHolder):
        def ask(self, command: Any, timeout: float = 60.0) -> dict[str, Any]:
            return {"ok": True}

    with pytest.raises(WslabError, match="holder 0 on a fake host answered without t"):
        burst(Mute())  # type: ignore[arg-type]
