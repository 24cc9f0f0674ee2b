"""``wslab bench``: a live loopback run in separate processes, beside the simulator.

What lives here: :func:`run_bench` and its :class:`BenchOptions` (link, connections, the
stretch of trace, speed, seed, drain wait), which starts a server process, an optional link shaper
process and a load-client process (so the two cores each carry one side), waits for the
client, stops everything it started (also on an error, Ctrl-C or SIGTERM: all at once,
SIGKILL after ``lifeline.INTERRUPT_GRACE_S``; the children die with it even on SIGKILL),
joins the logs into the simulator's tables and returns the same summary record as
``wslab simulate`` plus what only a live run has (negotiated extension and subprotocol,
CPU, memory, control frames) and the simulator's prediction for the same run beside each
figure.

Live wire figures come from counting the bytes each connection really wrote and read
(:class:`~wslab.harness.frametally.FrameTally`) and from the kernel (``TCP_INFO`` on the
client's sockets: payload bytes and data segments, plus 52 bytes of headers per segment as
in the wire model; the sockets are on loopback, so segments follow loopback's MSS, and the
kernel counts include the opening handshake and control frames).

``client="chromium"`` (``--client chromium``) runs the client side in headless Chromium
instead (``browser_client.py``, in its own process like the load client): the page's
WebSocket sends the trace's ``c2s`` messages and stamps what arrives, a tap between it and
the server counts the frames both ways, and the same files come back, so everything below
holds for it too. Its prediction is ``browser_model.browser_prediction``: the client side
compressed as Chromium does, with the parameters the handshake agreed; the summary adds
what Chromium offered (``offered``) beside what was agreed (``negotiated``) and how late
the page kept its schedule.

Measured and predicted cover the same messages: the client sends only the trace's ``c2s``
side (the server plays ``s2c``), the prediction simulates the very trace replayed (scaled
and cut to ``--duration``) once per connection, and with ``zstd-dict`` both replay the
messages after the dictionaries' training prefix, with the same dictionary set (written to
the run's directory and loaded by both processes). Each side logs every data frame it sent
with its compress/skip decision, so the live decision sequence is compared with the
simulator's frame by frame (``decisions``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import lifeline
from wslab.harness.meter import ProcessSampler
from wslab.harness.recorder import join_stream, load_coded_frames, load_logs
from wslab.link import get_profile
from wslab.metrics import summarise
from wslab.pipeline import resolve_envelope
from wslab.sim import SimResult, selector_summary, simulate
from wslab.tables import read_table
from wslab.traces.io import read_trace, write_trace
from wslab.traces.model import Trace
from wslab.wire import TCP_IP_HEADER_BYTES

Progress = Callable[[str], None]
PREDICTED_KEYS = ("messages", "frames", "payload_bytes", "compressed_bytes", "ws_bytes",
                  "tcp_bytes", "tcp_segments", "compression_ratio", "cpu_us_per_msg",
                  "frames_compressed", "frames_plain")
CLIENTS = ("load", "chromium")
"""What can play the client side: the Python load client, or headless Chromium."""
_PER_CONNECTION = ("messages", "frames", "payload_bytes", "compressed_bytes", "ws_bytes",
                   "tcp_bytes", "tcp_segments", "frames_compressed", "frames_plain")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """How :func:`run_bench` replays a trace; plain values, checked when built.

    Attributes:
        link: Link profile for the shaper (a name or a YAML file; None: the config's
            ``link.profile``; ``loopback``: no shaper).
        connections: Client connections, each replaying the whole trace (at least 1).
        duration: Only the first ``duration`` seconds of (sped-up) trace time (None: all).
        speed: Trace time is divided by this (above 0).
        seed: Seed for the shaper's jitter and loss, and for the prediction's link.
        drain_timeout: Longest wait for missing messages at the end, seconds.
        client: ``load`` (the Python load client) or ``chromium`` (a headless browser).
        chromium: The browser for ``chromium`` (None: ``$WSLAB_CHROMIUM`` or
            /usr/bin/chromium).
    """

    link: str | None = None
    connections: int = 1
    duration: float | None = None
    speed: float = 1.0
    seed: int = 0
    drain_timeout: float = 5.0
    client: str = "load"
    chromium: str | None = None

    def __post_init__(self) -> None:
        wrong = []
        if self.client not in CLIENTS:
            wrong.append(f"client must be one of {', '.join(CLIENTS)}, got {self.client!r}")
        if self.connections < 1:
            wrong.append(f"connections must be at least 1, got {self.connections}")
        if not (self.speed > 0 and math.isfinite(self.speed)):
            wrong.append(f"speed must be a finite number above 0, got {self.speed}")
        if self.duration is not None and not self.duration > 0:
            wrong.append(f"duration must be above 0 seconds, got {self.duration}")
        if not self.drain_timeout >= 0:
            wrong.append(f"drain_timeout must be 0 or more seconds, got {self.drain_timeout}")
        if wrong:
            raise WslabError("bench options: " + "; ".join(wrong))


@dataclass
class BenchResult:
    """A live run: summary (with the prediction beside it), tables and process figures."""

    summary: dict[str, Any]
    messages: pd.DataFrame
    connections: pd.DataFrame
    predicted: dict[str, Any]


def scaled_trace(path: str | Path, speed: float, duration: float | None) -> Trace:
    """The trace ``wslab bench`` replays: times from 0, divided by ``speed``, cut at
    ``duration`` seconds (None: all of it)."""
    trace = read_trace(path)
    base = trace.messages[0].t if trace.messages else 0.0
    kept = [dataclasses.replace(m, t=(m.t - base) / speed) for m in trace.messages
            if duration is None or (m.t - base) / speed <= duration]
    return Trace(kept, trace.meta)


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    """A child tied to this process, in a session of its own: a terminal's Ctrl-C reaches
    only ``wslab bench``, which stops its children in order."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return lifeline.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True, death_signal=signal.SIGKILL)


def _read_port(proc: subprocess.Popen[str], what: str, timeout: float = 30.0) -> int:
    assert proc.stdout is not None
    start = time.monotonic()
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise WslabError(f"{what} did not start ({time.monotonic() - start:.1f} s): "
                         f"{(err.strip().splitlines() or [line.strip() or 'no output'])[-1]}")
    return int(line)


def _stop(proc: subprocess.Popen[str] | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_bench(trace_path: str | Path, config: TuningConfig,
              options: BenchOptions | None = None, *,
              progress: Progress | None = None) -> BenchResult:
    """Run the trace live on loopback and return measured figures beside predicted ones.

    Args:
        trace_path: The trace to replay (server side: its s2c messages; client: c2s).
        config: The tuning config for both sides.
        options: Link, connections, stretch of trace, speed, seed, drain wait (defaults:
            ``BenchOptions()``).
        progress: Called with a line of text at each stage.
    """
    opts = options if options is not None else BenchOptions()
    say = progress or (lambda _msg: None)
    profile = get_profile(opts.link or config.link.profile)
    shaped = profile.name != "loopback"
    trace = scaled_trace(trace_path, opts.speed, opts.duration)
    if not trace.messages:
        raise WslabError(f"{trace_path}: no messages within --duration {opts.duration}")
    dictionaries = None
    notes: list[str] = []
    if config.compression.algorithm == "zstd-dict":
        from wslab.sim.dictionaries import dictionary_plan

        plan = dictionary_plan(trace, config.compression)
        trace, dictionaries = plan.scored, plan.dictionaries
        notes.append(plan.note)
        say(plan.note)
    chromium, envelope = "", None
    if opts.client == "chromium":
        from wslab.harness.browser_client import check_playwright, chromium_path
        from wslab.harness.browser_model import browser_support

        for note in browser_support(config):
            notes.append(note)
            say(note)
        check_playwright()  # one line now if either is not there
        chromium = chromium_path(opts.chromium)
        envelope = resolve_envelope(config, trace)  # what the server and simulator use
    n_s2c = sum(1 for m in trace.messages if m.dir == "s2c")
    py = sys.executable
    server = shaper = client = None
    with tempfile.TemporaryDirectory(prefix="wslab-bench-") as tmp:
        work = Path(tmp)
        cfg_path = work / "config.yaml"
        config.save(cfg_path)
        tr_path = work / "trace.jsonl"
        write_trace(trace, tr_path)
        extra: list[str] = []
        if dictionaries is not None:
            dict_path = work / "dictionaries.json"
            dictionaries.save(dict_path)
            extra = ["--dictionaries", str(dict_path)]
        try:
            say("starting server")
            server = _start([py, "-m", "wslab.harness.procs", "server", "--config",
                             str(cfg_path), "--trace", str(tr_path), "--scenario", "replay",
                             "--log-dir", str(work), *extra])
            port = _read_port(server, "the server")
            server_cpu = ProcessSampler(server.pid)
            before = server_cpu.sample()
            if shaped:
                from wslab.harness.shaper_proc import ShaperProcess

                say(f"starting link shaper ({profile.name})")
                shaper = ShaperProcess(profile, "127.0.0.1", port, seed=opts.seed)
                port = shaper.port
            say(f"running {opts.connections} connection(s), {len(trace)} messages each")
            if opts.client == "chromium":
                client = _start([py, "-m", "wslab.harness.browser_client", "--url",
                                 f"ws://127.0.0.1:{port}/", "--trace", str(tr_path),
                                 "--connections", str(opts.connections), "--expect-s2c",
                                 str(n_s2c), "--drain-timeout", str(opts.drain_timeout),
                                 "--log-dir", str(work), "--chromium", chromium,
                                 *(["--envelope", envelope] if envelope else [])])
            else:
                client = _start([py, "-m", "wslab.harness.procs", "client", "--url",
                                 f"ws://127.0.0.1:{port}/", "--config", str(cfg_path),
                                 "--trace", str(tr_path), "--connections",
                                 str(opts.connections), "--c2s-only", "--expect-s2c",
                                 str(n_s2c), "--drain-timeout", str(opts.drain_timeout),
                                 "--log-dir", str(work), *extra])
            # the browser's CPU is its processes' (driver, Chromium and its children)
            client_cpu = ProcessSampler(client.pid, children=opts.client == "chromium")
            client_before = client_cpu.sample()
            client_after = client_before
            server_peak_kib = before.rss_kib
            while client.poll() is None:
                with contextlib.suppress(Exception):
                    client_after = client_cpu.sample()
                    server_peak_kib = max(server_peak_kib, server_cpu.sample().rss_kib)
                time.sleep(0.1)
            _, err = client.communicate()
            if client.returncode != 0:
                raise WslabError(f"the {'browser' if opts.client == 'chromium' else 'load'} "
                                 "client failed: "
                                 f"{(err.strip().splitlines() or ['no output'])[-1]}")
            after = server_cpu.sample()
            say("stopping")
            if shaper is not None:
                shaper.stop()
                shaper = None
            _stop(server)
        finally:  # on an error or Ctrl-C: nothing more is wanted from them, stop all at once
            lifeline.stop_all([client, shaper.proc if shaper is not None else None, server])
        if opts.client == "chromium":
            predicted = _browser_prediction(work, trace, config, profile, opts.seed,
                                            envelope)
        else:
            predicted = simulate(trace, config, link=profile, seed=opts.seed,
                                 dictionaries=dictionaries)
        result = _collect(work, predicted, opts.connections, before, after, client_before,
                          client_after)
        result.summary["notes"] = notes + result.summary["notes"]
        result.summary["client"] = opts.client
        if opts.client == "chromium":
            from wslab.harness.browser_logs import browser_figures

            result.summary.update(browser_figures(work, result.connections))
        result.summary["rss_server_peak_kib"] = server_peak_kib
        result.summary["kib_per_connection"] = ((server_peak_kib - before.rss_kib)
                                                / opts.connections)
        return result


def _browser_prediction(work: Path, trace: Trace, config: TuningConfig, profile: Any,
                        seed: int, envelope: str | None) -> SimResult:
    from wslab.harness.browser_logs import read_agreed
    from wslab.harness.browser_model import browser_prediction

    return browser_prediction(trace, config, read_agreed(work), link=profile, seed=seed,
                              envelope=envelope)


def _collect(work: Path, sim: SimResult, connections: int, before: Any, after: Any,
             client_before: Any, client_after: Any) -> BenchResult:
    s_sent, s_recv = load_logs(work, "server")
    c_sent, c_recv = load_logs(work, "client")
    conns = read_table(work / "client-connections.parquet")
    server_info = json.loads((work / "server.json").read_text())
    down, down_counts = join_stream(s_sent, c_recv)
    up, up_counts = join_stream(c_sent, s_recv)
    messages = pd.concat([down, up], ignore_index=True)
    integrity = {k: down_counts[k] + up_counts[k] for k in down_counts}

    def col(name: str) -> float:
        return float(conns[name].fillna(0).sum()) if name in conns else 0.0

    wire = {
        "s2c": {"frames": col("in_data_frames"), "ws_bytes": col("in_data_bytes"),
                "compressed_bytes": col("in_data_payload_bytes"),
                "tcp_bytes": col("tcp_bytes_received")
                + col("tcp_data_segs_in") * TCP_IP_HEADER_BYTES,
                "tcp_segments": col("tcp_data_segs_in"),
                "compress_us": server_info["compress_ns"] / 1e3, "decompress_us": 0.0},
        "c2s": {"frames": col("out_data_frames"), "ws_bytes": col("out_data_bytes"),
                "compressed_bytes": col("out_data_payload_bytes"),
                "tcp_bytes": col("tcp_bytes_sent")
                + col("tcp_data_segs_out") * TCP_IP_HEADER_BYTES,
                "tcp_segments": col("tcp_data_segs_out"),
                "compress_us": col("compress_ns") / 1e3, "decompress_us": 0.0},
    }
    control = {"frames": int(col("in_control_frames") + col("out_control_frames")),
               "ws_bytes": int(col("in_control_bytes") + col("out_control_bytes")),
               "note": "ping/pong/close frames after the handshake; the handshake itself is "
                       "in the kernel's tcp counts only"}
    summary = summarise(messages, wire, integrity=integrity, control=control)
    coded = pd.concat([load_coded_frames(work, "server"), load_coded_frames(work, "client")],
                      ignore_index=True)
    summary.update(selector_summary(coded, sim.config.compression.algorithm != "none"))
    summary["decisions"] = compare_decisions(coded, sim.frames)
    first = conns.iloc[0] if len(conns) else pd.Series(dtype=object)
    errors = conns["error"].dropna() if "error" in conns else pd.Series(dtype=object)
    summary.update({
        "mode": "live", "link": sim.link.name, "connections": connections,
        "connection_errors": len(errors),
        "negotiated": first.get("extensions"), "subprotocol": first.get("subprotocol"),
        "cpu_server_s": after.cpu_s - before.cpu_s,
        "cpu_client_s": client_after.cpu_s - client_before.cpu_s,
        "rss_server_kib": after.rss_kib,
        "admission": server_info.get("admission"), "alerts": server_info.get("alerts"),
    })
    predicted = {k: sim.summary[k] * (connections if k in _PER_CONNECTION else 1)
                 for k in PREDICTED_KEYS if sim.summary.get(k) is not None}
    predicted["latency_ms"] = sim.summary["latency_ms"]
    predicted["by_dir"] = {
        d: {k: v * (connections if k in _PER_CONNECTION else 1)
            for k, v in block.items() if k in PREDICTED_KEYS and v is not None}
        for d, block in sim.summary.get("by_dir", {}).items()}
    if "dictionary_bytes" in sim.summary:
        predicted["dictionary_bytes"] = sim.summary["dictionary_bytes"]
    predicted["plain_by_key"] = {k: v * connections
                                 for k, v in sim.summary.get("plain_by_key", {}).items()}
    summary["predicted"] = predicted
    summary["notes"] = sim.notes
    return BenchResult(summary, messages, conns, predicted)


def compare_decisions(live: pd.DataFrame, simulated: pd.DataFrame) -> dict[str, Any]:
    """Live compress/skip decisions beside the simulator's, frame by frame.

    Every live connection replays the same trace, so each one's frames in one direction
    are compared in order with the simulator's frames of that direction. ``differ`` counts
    positions where one compressed and the other did not; ``compared`` the positions both
    have (with batching, live timing may group a message differently near a deadline,
    which shifts the rest; without batching the frames are the same one for one).
    """
    compared = differ = 0
    if not len(live) or not len(simulated):
        return {"compared": 0, "differ": 0, "match": None}
    for direction, sim_part in simulated.groupby("dir", sort=False):
        want = sim_part["compressed"].to_numpy(dtype=bool)
        mine = live[live["dir"] == direction]
        for _conn, frames in mine.groupby("conn", sort=False):
            got = frames.sort_values("frame")["compressed"].to_numpy(dtype=bool)
            n = min(len(got), len(want))
            compared += n
            differ += int((got[:n] != want[:n]).sum())
    return {"compared": compared, "differ": differ,
            "match": 1.0 - differ / compared if compared else None}
