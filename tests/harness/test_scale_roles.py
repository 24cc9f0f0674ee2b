"""The scale roles' processes: a holder whose first line waits to be read keeps its
connections alive (``scale_roles.emit`` writes from a thread, so the loop, and with it
every connection's answer to the worker's pings, goes on).

The orchestrator reads its children's lines in turn; a holder's ``ready`` line lists the
open time of each of its connections and outgrows the pipe (64 KiB) at a few thousand.
Written from the loop, it blocked the holder until read, and the worker's heartbeat closed
every one of its connections (1011) meanwhile: once seen in a 50,000-connection run.
"""

from __future__ import annotations

import time
from pathlib import Path

from wslab.config import TuningConfig
from wslab.harness import commands as c
from wslab.harness.cluster import python_child

N = 7000  # a ready line of ~84 KB: more than a pipe holds
INTERVAL_S, TIMEOUT_S = 0.3, 0.8


def test_a_holder_whose_ready_line_waits_unread_keeps_answering_pings(tmp_path: Path) -> None:
    config = TuningConfig().updated({
        "compression.algorithm": "none", "scaling.max_connections": N + 100,
        "scaling.heartbeat_interval_s": INTERVAL_S, "scaling.heartbeat_timeout_s": TIMEOUT_S})
    cfg = tmp_path / "config.yaml"
    config.save(cfg)
    worker = python_child(["worker", "--config", str(cfg), "--broker", "memory", "--namespace",
                           "t", "--worker-id", "0", "--port", "0"], "worker")
    holder = None
    try:
        port = worker.readline(30)
        assert port.isdigit(), port
        holder = python_child(["holder", "--url", f"ws://127.0.0.1:{port}/", "--config",
                               str(cfg), "--connections", str(N), "--prefix", "h",
                               "--rate", "0", "--source", "127.0.0.1"], "holder")
        # Its ramp takes a few seconds; its ready line is left unread well past
        # interval + timeout after that, while the worker pings every connection.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            stats = c.expect(c.WorkerStats, worker.ask(c.Stats()), "worker")
            if stats["held"] >= N:
                break
            time.sleep(0.5)
        assert stats["held"] >= N, f"the holder opened {stats['held']} of {N}"
        time.sleep(4 * (INTERVAL_S + TIMEOUT_S))
        ready = c.expect(c.Ready, holder.read_json(30), "holder")
        assert ready["opened"] == N
        counted = c.expect(c.Counted, holder.ask(c.Count()), "holder")
        assert counted["closed_early"] == 0 and counted["open"] == N, counted
    finally:
        for child in (holder, worker):
            if child is not None:
                child.stop(10)
