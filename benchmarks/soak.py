"""Soak: replay, broadcast and room on a shaped link for minutes, with connections churning.

``make soak`` runs ``python benchmarks/soak.py --minutes N`` (default 10); ``--quick`` is one
minute, so ``run(quick)`` fits ``benchmarks/run_all.py``. Not part of ``make test``.

Set-up, per scenario (all three run at once):

- a wslab server in its own process (``python -m wslab.harness.procs server``), with
  batching ``priority`` (auto envelope), permessage-deflate under the ``adaptive`` policy;
- a :class:`LinkShaper` (profile ``wifi``) between it and the clients;
- churning clients: a new connection every ``CHURN_S`` seconds, each leaving on its own
  once it has what it came for, so connections arrive and leave all the time:
  *replay* — a client receives a 6 s slice of the mixed trace (all three priorities) and the
  server closes it at the end; *broadcast* — one endless broadcast (the mixed trace tiled),
  clients join at any moment and leave after ``BROADCAST_TAKE`` messages; *room* — a client
  sends a 6 s slice into its room (4 rooms) and receives what its room-mates send.

Figures (one row each): messages sent and received per scenario and direction; lost,
duplicated and reordered (target 0, counted by :func:`join_stream` on the server's and the
clients' logs); the server's RSS sampled every few seconds, with the least-squares slope
over the second half of the run in KiB/min — raw, and net of the server's own per-message
log (the recorder keeps one row per message by design; its measured cost per row times the
rows logged per minute is subtracted); and latency p50/p90/p99/max per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.recorder import Recorder, join_stream, load_logs
from wslab.harness.shaper import LinkShaper
from wslab.link import get_profile
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Message, Trace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("replay", "broadcast", "room")
CHURN_S = 0.5  # a new connection per scenario this often
SLICE_S = 6.0  # trace seconds a replay or room client takes part for
BROADCAST_TAKE = 150  # messages a broadcast client reads before leaving
RSS_EVERY_S = 5.0
SLOPE_LIMIT_KIB_MIN = 512.0  # net RSS growth allowed over the second half
PROFILE = "wifi"


def soak_config() -> TuningConfig:
    return TuningConfig().updated({
        "batching.strategy": "priority", "batching.envelope": "auto",
        "compression.algorithm": "permessage-deflate", "compression.policy": "adaptive",
        "scaling.max_connections": 1000, "scaling.heartbeat_interval_s": 5,
        "link.profile": PROFILE,
    })


def traces(minutes: float) -> dict[str, Trace]:
    """The replay slice, the endless broadcast, and the room slice (all c2s)."""
    mixed = read_trace(ROOT / "data" / "mixed.jsonl.zst").messages
    piece = [m for m in mixed if m.t < SLICE_S]
    span = mixed[-1].t + 1.0
    tiled: list[Message] = []
    k = 0
    while not tiled or tiled[-1].t < minutes * 60 + 30:
        tiled += [Message(m.t + k * span, m.dir, m.type, m.priority, m.payload, m.is_text)
                  for m in mixed if m.dir == "s2c"]
        k += 1
    room = [Message(m.t, "c2s", m.type, m.priority, m.payload, m.is_text) for m in piece]
    return {"replay": Trace(piece), "broadcast": Trace(tiled), "room": Trace(room)}


def recorder_bytes_per_row() -> float:
    """Heap cost of one sent-log row of the server's Recorder (measured, not assumed)."""
    rec = Recorder()
    payload = b'{"type":"chat.message","text":"hello"}'
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for i in range(20_000):
        rec.on_sent("b12-0", "s2c", i, "chat.message", "normal", i, time.monotonic(),
                    payload, i, time.monotonic())
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / 20_000


@dataclass
class Scenario:
    name: str
    trace: Trace
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    clients: list[LoadClient] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)

    def start_server(self, config_path: Path, trace_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wslab.harness.procs", "server", "--config",
             str(config_path), "--trace", str(trace_path), "--scenario", self.name,
             "--rooms", "4", "--log-dir", str(self.workdir)],
            stdout=subprocess.PIPE, cwd=ROOT)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop_server(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=120)


async def churn(sc: Scenario, config: TuningConfig, shaper_port: int, until: float) -> None:
    """Open a connection every CHURN_S seconds until ``until``; wait for all to leave."""
    n_s2c = sum(1 for m in sc.trace.messages if m.dir == "s2c")
    tasks: list[asyncio.Task[Any]] = []
    n = 0
    while time.monotonic() < until:
        kwargs: dict[str, Any] = {"trace": sc.trace, "drain_timeout": 3.0,
                                  "prefix": f"{sc.name[0]}{n}"}
        if sc.name == "replay":
            kwargs.update(expect_s2c=n_s2c, send=False)
        elif sc.name == "broadcast":
            kwargs.update(expect_s2c=BROADCAST_TAKE, send=False)
        client = LoadClient(f"ws://127.0.0.1:{shaper_port}/", config, **kwargs)
        sc.clients.append(client)
        tasks.append(asyncio.create_task(client.run()))
        n += 1
        await asyncio.sleep(CHURN_S)
    for result in await asyncio.gather(*tasks):
        sc.errors += [c["error"] for c in result.connections if c.get("error")]


async def sample_rss(scs: list[Scenario], until: float) -> None:
    procs = {sc.name: psutil.Process(sc.proc.pid) for sc in scs if sc.proc is not None}
    while time.monotonic() < until:
        for sc in scs:
            sc.rss.append((time.monotonic(), procs[sc.name].memory_info().rss))
        await asyncio.sleep(RSS_EVERY_S)


async def drive(scs: list[Scenario], config: TuningConfig, seconds: float) -> float:
    profile = get_profile(PROFILE)
    start = time.monotonic()
    until = start + seconds
    shapers = [LinkShaper(profile, "127.0.0.1", sc.port, seed=i) for i, sc in enumerate(scs)]
    for s in shapers:
        await s.start()
    try:
        await asyncio.gather(sample_rss(scs, until),
                             *(churn(sc, config, s.port, until) for sc, s in zip(scs, shapers,
                                                                                  strict=True)))
    finally:
        for s in shapers:
            await s.stop()
    return start


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares RSS slope over the second half of the samples."""
    half = samples[len(samples) // 2:]
    if len(half) < 3:
        return float("nan")
    t = np.array([s[0] for s in half]) / 60.0
    rss = np.array([s[1] for s in half]) / 1024.0
    return float(np.polyfit(t - t[0], rss, 1)[0])


def soak(minutes: float) -> list[dict[str, Any]]:
    config = soak_config()
    rows: list[dict[str, Any]] = []
    per_row = recorder_bytes_per_row()
    with tempfile.TemporaryDirectory(prefix="wslab-soak-") as tmp:
        config_path = Path(tmp) / "soak.yaml"
        config.save(config_path)
        scs = []
        for name, trace in traces(minutes).items():
            trace_path = Path(tmp) / f"{name}.jsonl"
            write_trace(trace, trace_path)
            sc = Scenario(name, trace, Path(tmp) / name)
            sc.start_server(config_path, trace_path)
            scs.append(sc)
        try:
            start = asyncio.run(drive(scs, config, minutes * 60))
        finally:
            for sc in scs:
                sc.stop_server()
        for sc in scs:
            rows += report(sc, start, per_row)
    return rows


def report(sc: Scenario, start: float, per_row: float) -> list[dict[str, Any]]:
    b = f"soak/{sc.name}"
    server_sent, server_recv = load_logs(sc.workdir, "server")
    client_sent = pd.concat([c.recorder.sent_frame() for c in sc.clients], ignore_index=True)
    client_recv = pd.concat([c.recorder.received_frame() for c in sc.clients],
                            ignore_index=True)
    rows = [row(b, "connections", len(sc.clients), "count"),
            row(b, "connection errors", len(sc.errors), "count", target="0",
                ok=not sc.errors, first_error=sc.errors[0] if sc.errors else None)]
    joined = []
    for direction, sent, recv in (("s2c", server_sent, client_recv),
                                  ("c2s", client_sent, server_recv)):
        if len(sent) == 0 and len(recv) == 0:
            continue
        frame, counts = join_stream(sent, recv)
        joined.append(frame)
        rows.append(row(b, f"{direction} messages sent", len(sent), "count"))
        rows.append(row(b, f"{direction} messages received", len(recv), "count"))
        for what in ("lost", "duplicated", "reordered"):
            rows.append(row(b, f"{direction} {what}", counts[what], "count", target="0",
                            ok=counts[what] == 0))
    # Latency per minute of hand-off, over every delivered message of the scenario.
    # For room, s2c is what room-mates got: the server's forward, joined end to end below.
    msgs = pd.concat(joined, ignore_index=True)
    msgs = msgs[msgs["delivered"]]
    minute = ((msgs["t_handoff"] - start) // 60).astype(int)
    for m, group in msgs.groupby(minute):
        q = np.percentile(group["latency_ms"], [50, 90, 99])
        rows.append(row(b, f"latency minute {m + 1}", float(q[0]), "ms p50",
                        p90=float(q[1]), p99=float(q[2]), max=float(group["latency_ms"].max()),
                        messages=len(group)))
    rss = sc.rss
    raw = slope_kib_per_min(rss)
    half_t = rss[len(rss) // 2][0] if rss else start
    logged = ((server_sent["t_handoff"] >= half_t).sum()
              + (server_recv["t_recv"] >= half_t).sum())
    minutes_half = max((rss[-1][0] - half_t) / 60.0, 1e-9) if rss else 1.0
    log_rate = logged * per_row / 1024.0 / minutes_half
    net = raw - log_rate
    rows.append(row(b, "server RSS first/last", rss[0][1] / 2**20 if rss else 0.0, "MiB",
                    last=rss[-1][1] / 2**20 if rss else 0.0, samples=len(rss)))
    rows.append(row(b, "server RSS slope, second half, raw", raw, "KiB/min"))
    rows.append(row(b, "server RSS slope, second half, net of message log", net, "KiB/min",
                    target=f"< {SLOPE_LIMIT_KIB_MIN:.0f}", ok=bool(net < SLOPE_LIMIT_KIB_MIN),
                    log_kib_per_min=log_rate, log_bytes_per_row=per_row))
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    """The benchmark runner's entry: one minute when quick, else ten."""
    return soak(1.0 if quick else 10.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    minutes = args.minutes if args.minutes is not None else (1.0 if args.quick else 10.0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(lambda quick: soak(minutes))
