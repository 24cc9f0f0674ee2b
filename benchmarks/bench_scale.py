"""Connection scaling: memory per connection, broadcast fan-out, Redis across workers.

Every figure comes from real processes on loopback: wslab workers (``wslab scale``) and, as
the peer, the smallest websockets server that can hold connections and broadcast (no wslab
code: ``serve`` + a set of connections + the library's ``broadcast()``), both loaded by the
same wslab holder processes (``wslab/harness/holder.py``) and measured the same way: RSS
growth of the server process from before the ramp to after its broadcasts, divided by the
connections held (the peer sends one broadcast; wslab's compression-off run sends five, so
if anything its figure is the larger). Heartbeats are on (ping every 5 s) while the
connections idle.

- 10,000 connections on one worker (2,000 with ``--quick``): memory per connection with
  compression off (target at most 16 KiB) and websockets' default deflate (at most 64 KiB);
  the websockets docs quote 14 and 64 KiB.
- A broadcast to those 10,000 clients: p99 latency under 500 ms (five broadcasts, 0.5 s
  apart), beside the same run with Python's collector left alone (no ``gc.freeze()``: see
  ``wslab/harness/gcfreeze.py``).
- 20,000 connections across 2 workers with Redis fan-out (4,000 quick): integrity 0.
- 50,000 connections across 5 workers (10,000 quick), as ``wslab scale -n 50000 -w 5``:
  broadcast p99 under 1 s with nothing lost, beside each worker's own fan-out time (wall
  and CPU) and the holders' CPU; the peer is the same run with every broadcast sent through
  each connection's session instead of one prepared frame (``wslab/harness/fanout.py``).
- Compress once (``server_no_context_takeover`` + shared frames) against compressing per
  connection: compression CPU per broadcast of 4 KiB to 2,000 clients.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import main, row

from wslab.config import TuningConfig
from wslab.harness.cluster import Child, plan_load, python_child
from wslab.harness.commands import Broadcast, Wait
from wslab.harness.meter import ProcessSampler
from wslab.harness.scale import ScaleOptions, run_scale

PEER_SERVER = """
import asyncio, json, sys, time
from websockets.asyncio.server import serve, broadcast
held = set()
async def handler(ws):
    held.add(ws)
    try:
        await ws.wait_closed()
    finally:
        held.discard(ws)
async def main():
    comp = None if sys.argv[1] == "off" else "deflate"
    async with serve(handler, "127.0.0.1", 0, compression=comp, ping_interval=5,
                     ping_timeout=20) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            msg = json.dumps({"k": "b", "seq": 0, "t": time.monotonic(), "pad": "x" * 200})
            broadcast(held, msg)
            print(json.dumps({"held": len(held)}), flush=True)
asyncio.run(main())
"""


def _peer_memory(n: int, compression: str) -> float:
    """KiB per connection of the plain websockets server, measured like wslab's."""
    config = TuningConfig().updated({"compression.algorithm": "none" if compression == "off"
                                     else "permessage-deflate"})
    server = Child([sys.executable, "-c", PEER_SERVER, compression], "peer server")
    holders: list[Child] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.yaml"
        config.save(cfg)
        try:
            port = int(server.readline(30))
            sampler = ProcessSampler(server.pid)
            time.sleep(0.3)
            before = sampler.sample().rss_kib
            plan = plan_load(n, 1)
            for p, count in enumerate(plan.per_process):
                args = ["holder", "--url", f"ws://127.0.0.1:{port}/", "--config", str(cfg),
                        "--connections", str(count), "--prefix", f"p{p}"]
                for a in plan.source_addresses:
                    args += ["--source", a]
                holders.append(python_child(args, f"holder {p}"))
            opened = sum(h.read_json(300)["opened"] for h in holders)
            time.sleep(1.0)
            held = server.ask(Broadcast(count=1))["held"]  # the peer broadcasts on any line
            for h in holders:
                h.ask(Wait(kind="b", per_connection=1, timeout=30))
            time.sleep(0.5)
            after = sampler.sample().rss_kib
            assert opened == held == n, (opened, held, n)
            return (after - before) / held
        finally:
            for h in holders:
                h.stop()
            server.stop()


def _ms(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def _ms_or_none(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _wslab(config: TuningConfig, **kw: Any) -> dict[str, Any]:
    return run_scale(config, ScaleOptions(**kw)).summary


def run(quick: bool) -> list[dict[str, Any]]:
    n = 2000 if quick else 10_000
    n2 = 4000 if quick else 20_000
    hb = {"scaling.heartbeat_interval_s": 5.0, "scaling.heartbeat_timeout_s": 20.0}
    off = TuningConfig().updated({**hb, "compression.algorithm": "none"})
    deflate = TuningConfig().updated(hb)  # the websockets defaults: 12 bits, memLevel 5
    rows: list[dict[str, Any]] = []
    one_off = _wslab(off, connections=n, broadcasts=5, directs=0, idle_s=6.0)
    # The same run with Python's collector left alone: a full collection walks every object
    # of every held connection and the loop sends nothing meanwhile.
    plain_gc = _wslab(off, connections=n, broadcasts=5, directs=0, idle_s=6.0, gc_freeze=False)
    peer_off = _peer_memory(n, "off")
    rows.append(row("scale", f"memory per connection, {n} held, compression off",
                    one_off["memory_per_connection_kib"], "KiB", peer="plain websockets server",
                    peer_value=peer_off, target="<= 16 KiB",
                    ok=one_off["memory_per_connection_kib"] <= 16))
    one_def = _wslab(deflate, connections=n, broadcasts=1, directs=0, idle_s=1.0)
    peer_def = _peer_memory(n, "deflate")
    rows.append(row("scale", f"memory per connection, {n} held, default deflate",
                    one_def["memory_per_connection_kib"], "KiB", peer="plain websockets server",
                    peer_value=peer_def, target="<= 64 KiB",
                    ok=one_def["memory_per_connection_kib"] <= 64))
    lat = one_off["broadcast_latency_ms"]
    fanout = [t for w in one_off["broadcast_fanout_ms"] for t in w]
    rows.append(row("scale", f"broadcast to {n} clients: p99 latency", lat["p99"], "ms",
                    peer="the same run without the GC freeze",
                    peer_value=plain_gc["broadcast_latency_ms"]["p99"],
                    target="< 500 ms", ok=lat["p99"] < 500 and one_off["lost"] == 0,
                    p50=lat["p50"], max=lat["max"], broadcasts=one_off["broadcasts"],
                    interval_s=one_off["broadcast_interval_s"],
                    p99_each_ms=json.dumps([round(v, 1) for v in
                                            one_off["broadcast_p99_ms_each"]]),
                    worker_fanout_max_ms=max(fanout) if fanout else None,
                    peer_p99_each_ms=json.dumps([round(v, 1) for v in
                                                 plain_gc["broadcast_p99_ms_each"]]),
                    note=(f"{one_off['broadcasts']} broadcasts "
                          f"{one_off['broadcast_interval_s']:g} s apart; p99 of each "
                          f"{_ms(one_off['broadcast_p99_ms_each'])} ms; the worker's own "
                          f"hand-off to all at most {max(fanout):.0f} ms; without the freeze "
                          f"{_ms(plain_gc['broadcast_p99_ms_each'])} ms")
                    if fanout else ""))
    rows.append(row("scale", f"ramp to {n} connections", one_off["connections_per_s"],
                    "connections/s", peer="the same run without the GC freeze",
                    peer_value=plain_gc["connections_per_s"],
                    time_to_n_s=one_off["time_to_n_s"],
                    peer_time_to_n_s=plain_gc["time_to_n_s"],
                    gc_full_pause_max_ms=one_off["gc_full_pause_max_ms"],
                    peer_gc_full_pause_max_ms=plain_gc["gc_full_pause_max_ms"],
                    note=f"{n} open in {one_off['time_to_n_s']:.1f} s "
                         f"({plain_gc['time_to_n_s']:.1f} s without the freeze); worker's "
                         f"full collections: {one_off['gc_full_collections']}, longest "
                         f"{_ms_or_none(one_off['gc_full_pause_max_ms'])} ms "
                         f"(without: {plain_gc['gc_full_collections']}, longest "
                         f"{_ms_or_none(plain_gc['gc_full_pause_max_ms'])} ms)"))
    rows.append(row("scale", f"idle CPU with {n} connections, ping every 5 s",
                    one_off["idle_cpu_percent"], "% of one core"))
    # SO_REUSEPORT does not split exactly in half: leave room above n2 / 2 per worker, or
    # admission control (correctly) refuses the excess with 1013.
    roomy = off.updated({"scaling.max_connections": n2})
    two = _wslab(roomy, connections=n2, workers=2, broadcasts=3, directs=50, idle_s=1.0)
    bad = two["lost"] + two["duplicated"] + two["reordered"] + two["connections_lost"]
    rows.append(row("scale", f"{n2} connections over 2 workers, Redis fan-out: "
                    "lost+dup+reordered+dropped", bad, "messages", target="0",
                    ok=bad == 0 and two["opened"] == n2,
                    receipts=two["broadcast_receipts"], p99_ms=two["broadcast_latency_ms"]["p99"],
                    direct_p99_ms=two["direct_latency_ms"]["p99"],
                    held_per_worker=json.dumps(two["held_per_worker"]),
                    time_to_n_s=two["time_to_n_s"],
                    close_codes=json.dumps(two["close_codes"]),
                    note=f"{two['broadcast_receipts']} receipts; held per worker "
                         f"{two['held_per_worker']}; {n2} open in {two['time_to_n_s']:.1f} s; "
                         f"broadcast p99 {two['broadcast_latency_ms']['p99']:.0f} ms, "
                         f"direct across workers p99 {two['direct_latency_ms']['p99']:.0f} ms"))
    rows.append(_fifty_thousand(off, quick))
    nct = TuningConfig().updated({**hb, "compression.server_no_context_takeover": True})
    m = 2000
    per = _wslab(nct, connections=m, broadcasts=5, message_size=4096, directs=0, idle_s=0.5)
    shared = _wslab(nct, connections=m, broadcasts=5, message_size=4096, directs=0,
                    idle_s=0.5, shared_broadcast=True)
    rows.append(row("scale", f"compression CPU per 4 KiB broadcast to {m}, compressed once",
                    shared["compress_ms"] / 5, "ms", peer="compressed per connection",
                    peer_value=per["compress_ms"] / 5,
                    cpu_ms_per_broadcast=shared["broadcast_cpu_ms_per_broadcast"],
                    peer_cpu_ms_per_broadcast=per["broadcast_cpu_ms_per_broadcast"],
                    ok=shared["lost"] == 0 and shared["shared_compressions"] == 5))
    return rows


def _fifty_thousand(off: TuningConfig, quick: bool) -> dict[str, Any]:
    """Broadcasts to 50,000 connections over 5 workers, prepared frames against sessions."""
    n, workers = (10_000, 5) if quick else (50_000, 5)
    # SO_REUSEPORT spreads unevenly (a worker may get a few hundred over n / 5): room above
    # it, or admission control (correctly) refuses the excess with 1013.
    roomy = off.updated({"scaling.max_connections": n // workers * 5 // 4})
    kw: dict[str, Any] = {"connections": n, "workers": workers, "broadcasts": 5,
                          "directs": 0, "idle_s": 2.0, "timeout_s": 300.0}
    load = _load()
    fast = _wslab(roomy, **kw)
    slow = _wslab(roomy, **kw, prepared_broadcast=False)
    lat = fast["broadcast_latency_ms"]
    wall = [max(w) for w in fast["broadcast_fanout_ms"] if w]
    cpu = [max(w) for w in fast["broadcast_fanout_cpu_ms"] if w]
    bad = fast["lost"] + fast["duplicated"] + fast["reordered"] + fast["connections_lost"]
    per_broadcast = fast["holder_broadcast_cpu_s"] / fast["broadcasts"]
    return row("scale", f"broadcast to {n} clients over {workers} workers: p99 latency",
               lat["p99"], "ms", peer="the same run through each connection's session",
               peer_value=slow["broadcast_latency_ms"]["p99"], target="< 1000 ms",
               ok=lat["p99"] < 1000 and bad == 0 and fast["opened"] == n,
               p50=lat["p50"], max=lat["max"], lost_dup_reordered_dropped=bad,
               p99_each_ms=json.dumps([round(v, 1) for v in fast["broadcast_p99_ms_each"]]),
               worker_fanout_max_ms=json.dumps([round(v, 1) for v in wall]),
               worker_fanout_cpu_max_ms=json.dumps([round(v, 1) for v in cpu]),
               holder_cpu_s_per_broadcast=per_broadcast,
               peer_worker_fanout_max_ms=json.dumps(
                   [round(max(w), 1) for w in slow["broadcast_fanout_ms"] if w]),
               peer_p99_each_ms=json.dumps([round(v, 1) for v in
                                            slow["broadcast_p99_ms_each"]]),
               held_per_worker=json.dumps(fast["held_per_worker"]), load_before=load,
               note=(f"{fast['opened']} open; p99 of each broadcast "
                     f"{_ms(fast['broadcast_p99_ms_each'])} ms; each worker's own fan-out "
                     f"at most {_ms(wall)} ms on the clock, {_ms(cpu)} ms of its CPU; "
                     f"holders' CPU {per_broadcast * 1e3:.0f} ms per broadcast; through "
                     f"sessions p99 each {_ms(slow['broadcast_p99_ms_each'])} ms; "
                     f"load average {load:.1f} before"))


def _load() -> float:
    """The 1-minute load average now (other work on the machine shows in every figure)."""
    import os

    return os.getloadavg()[0]


if __name__ == "__main__":
    main(run)
