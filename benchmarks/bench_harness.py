"""Live harness throughput against a minimal websockets echo and a picows ceiling.

Every run puts the server and the client in separate processes on loopback and echoes N
messages of one size (16 B, 64 B, 1 KiB, 16 KiB, 64 KiB), sent as fast as the client can
while the echoes are read back. The peer server is the smallest echo program the websockets
library allows (``async for m in ws: await ws.send(m)``); the peer client is as small (a
send loop and a reader task, nothing recorded). Compression is off everywhere.

- Server: wslab's server (send pipeline, selective extension, every message hashed and
  counted, metrics; as ``procs.py`` runs it without a log directory it keeps no row per
  message, which nothing would read) and the peer server, each driven by the same wslab
  load client. Target (issue 16): wslab at least 95 % of the peer's messages per second.
- Whole stack: wslab client + server against the peer client + server; target 90 %.
- Load client alone: against the same minimal websockets server, the wslab client and the
  peer client each report the CPU time they spent between opening the connection and the
  last echo (``time.process_time()`` in the client process), so messages per CPU-second is
  what each client could carry with a core to itself, whichever side of the pair is the
  bottleneck. Target (issue 16): wslab at least 1.5x the peer's at 16 B to 1 KiB and never
  below 1.0x above. Beside it, wall-clock messages per second against the picows echo
  server, which out-runs both clients, so there the client alone sets the pace.
- Ceiling: the whole wslab stack against an echo server and client written with picows
  (the fastest asyncio WebSocket library on PyPI, Cython), run the same way.
- Batching: hybrid (2 ms, 16 KiB) against unbatched with 64-byte messages, both all-wslab;
  target at least 5x.
- TCP data segments per message from the client's kernel counters, batched vs not.

Each server process (wslab plain, wslab batched, websockets, picows) is started once and
serves every run of its kind (its start-up is not timed; the client's clock starts before
it connects), after one short untimed run against each. The runs then go in turns (3 in
quick mode, 5 in the full run): in each turn, for each size, every contender runs once,
one after the other, so a burst of load elsewhere on the machine hits them alike. Each
figure is the median of its turns; each ratio is the median of the per-turn ratios (run i
over the peer's run i, taken back to back, so a slow drift of the machine cancels). Quick
mode sends 10,000 messages per run (fewer above 1 KiB: 32 MiB per run at most); the full
run 50,000 (256 MiB at most). The batching pair sends 200,000 in both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, median, row, turn_ratio

from wslab.config import TuningConfig
from wslab.traces.io import write_trace
from wslab.traces.model import Message, Trace

SIZES = (16, 64, 1024, 16384, 65536)

PEER_SERVER = """
import asyncio
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""

PEER_CLIENT = """
import asyncio, json, sys, time
from websockets.asyncio.client import connect
URL, N, SIZE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    msg = "x" * SIZE
    start, cpu = time.monotonic(), time.process_time()
    async with connect(URL, compression=None) as ws:
        async def reader():
            for _ in range(N):
                await ws.recv()
        task = asyncio.create_task(reader())
        for _ in range(N):
            await ws.send(msg)
        await task
        print(json.dumps({"elapsed_s": time.monotonic() - start,
                          "cpu_s": time.process_time() - cpu}), flush=True)
asyncio.run(main())
"""

PICOWS_SERVER = """
import asyncio, logging
logging.disable(logging.WARNING)  # picows warns on every write-buffer pause
from picows import WSListener, WSMsgType, ws_create_server
class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview())
async def main():
    server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

# The picows client honours the transport's flow control (pause_writing/resume_writing),
# as websockets' send() does with its write limit, instead of queueing all N at once.
PICOWS_CLIENT = """
import asyncio, json, sys, time
from picows import WSListener, WSMsgType, ws_connect
URL, N, SIZE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class Client(WSListener):
    def __init__(self):
        loop = asyncio.get_running_loop()
        self.left = N
        self.done = loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
    def on_ws_frame(self, transport, frame):
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.left -= 1
            if self.left == 0:
                self.done.set_result(None)
    def pause_writing(self):
        self.writable.clear()
    def resume_writing(self):
        self.writable.set()
async def main():
    msg = b"x" * SIZE
    start = time.monotonic()
    transport, client = await ws_connect(Client, URL)
    for _ in range(N):
        if not client.writable.is_set():
            await client.writable.wait()
        transport.send(WSMsgType.TEXT, msg)
    await client.done
    elapsed = time.monotonic() - start
    transport.send_close()
    transport.disconnect()
    print(json.dumps({"elapsed_s": elapsed}), flush=True)
asyncio.run(main())
"""


class _Server:
    """An echo server process for the length of a ``with`` block; ``port`` once started."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Server:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line.strip().isdigit():
                raise RuntimeError(f"echo server did not start: {line.strip() or 'no output'}")
            self.port = int(line)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wslab_server(cfg: Path) -> _Server:
    return _Server([sys.executable, "-m", "wslab.harness.procs", "server", "--config", str(cfg),
                    "--scenario", "echo"])


def _script_server(code: str) -> _Server:
    return _Server([sys.executable, "-c", code])


def _script_client(code: str, port: int, n: int, size: int) -> dict[str, float]:
    """One run of a minimal client program against the server on ``port``: messages per
    second, and per CPU-second of the client (when the program reports its CPU time)."""
    out = subprocess.run([sys.executable, "-c", code, f"ws://127.0.0.1:{port}/", str(n),
                          str(size)], capture_output=True, text=True, check=True, timeout=600)
    got = json.loads(out.stdout)
    return {"msg_s": n / float(got["elapsed_s"]),
            "msg_cpu_s": n / float(got["cpu_s"]) if got.get("cpu_s") else float("nan")}


def _wslab_client(port: int, n: int, size: int, cfg: Path, work: Path) -> dict[str, Any]:
    """One echo run of the wslab load client; msg/s and kernel segments per message."""
    trace = work / f"echo-{size}-{n}.jsonl"
    if not trace.exists():
        write_trace(Trace([Message(0.0, "c2s", "x", "normal", b"x" * size, True)
                           for _ in range(n)]), trace)
    out = subprocess.run([sys.executable, "-m", "wslab.harness.procs", "client", "--url",
                          f"ws://127.0.0.1:{port}/", "--config", str(cfg), "--trace",
                          str(trace), "--drain-timeout", "10"],
                         capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["messages_received"] != n:
        raise RuntimeError(f"echo lost messages: {result}")
    result["msg_s"] = n / result["elapsed_s"]
    result["msg_cpu_s"] = n / result["cpu_s"]
    result["segs_per_msg"] = result["tcp_data_segs_out"] / n
    return result


def _count(size: int, quick: bool) -> int:
    """Messages per run: a fixed count for small messages, a byte budget for large ones.

    Quick mode sends 30,000 small messages, not fewer: the figures are per message, and at
    10,000 a client's run lasts ~0.1 s of CPU, where its connection's set-up and closing
    handshake weigh several per cent and one turn's ratio swung from 1.2 to 2.3 (1 KiB
    client CPU, seven turns on a quiet machine)."""
    most, budget = (30_000, 32 << 20) if quick else (50_000, 256 << 20)
    return max(200, min(most, budget // size))


def _size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


SECTION = "echo throughput by message size"


def _turns_note(runs: list[float]) -> str:
    return f"medians of {len(runs)} turns; ratio the median of the per-turn ratios"


def _size_rows(size: int, runs: dict[str, list[float]], n: int) -> list[dict[str, Any]]:
    label = _size_label(size)
    mb = size / 1e6
    mine, peer_srv = median(runs["wslab"]), median(runs["peer server"])
    srv_ratio = turn_ratio(runs["wslab"], runs["peer server"])
    # wslab client + server is the whole stack: the same runs as the server row
    stack, peer_stack = mine, median(runs["peer"])
    stack_ratio = turn_ratio(runs["wslab"], runs["peer"])
    client_ratio = turn_ratio(runs["client cpu"], runs["peer client cpu"])
    client_floor = 1.5 if size <= 1024 else 1.0
    extra: dict[str, Any] = {"section": SECTION, "size_bytes": size, "messages": n}
    rows = [
        row("harness", f"echo {label}: wslab server msg/s (same wslab client)", mine,
            "msg/s", peer="minimal websockets echo server", peer_value=peer_srv,
            ratio=srv_ratio, target="ratio >= 0.95", ok=srv_ratio >= 0.95,
            series="wslab server + wslab client", peer_series="websockets server + wslab client",
            note=_turns_note(runs["wslab"]), **extra),
        row("harness", f"echo {label}: whole wslab stack msg/s", stack, "msg/s",
            peer="minimal websockets server + client", peer_value=peer_stack,
            ratio=stack_ratio, target="ratio >= 0.9", ok=stack_ratio >= 0.9,
            series="wslab server + wslab client",
            peer_series="websockets minimal server + client",
            note=f"{stack * mb:.1f} vs {peer_stack * mb:.1f} MB/s each way; "
                 + _turns_note(runs["wslab"]), **extra),
        row("harness", f"echo {label}: wslab load client msg per client CPU-second",
            median(runs["client cpu"]), "msg/cpu-s",
            peer="minimal websockets client (same websockets server)",
            peer_value=median(runs["peer client cpu"]), ratio=client_ratio,
            target=f"ratio >= {client_floor}", ok=client_ratio >= client_floor,
            series="wslab client", peer_series="websockets minimal client",
            note="CPU time of the client process from connect to the last echo; "
                 + _turns_note(runs["client cpu"]), **extra),
    ]
    if runs["picows"]:
        ceiling = median(runs["picows"])
        rows += [
            row("harness", f"echo {label}: wslab load client msg/s against a picows server",
                median(runs["client vs picows"]), "msg/s",
                peer="minimal websockets client (same picows server)",
                peer_value=median(runs["peer client vs picows"]),
                ratio=turn_ratio(runs["client vs picows"], runs["peer client vs picows"]),
                series="wslab client", peer_series="websockets minimal client",
                note="the picows echo server out-runs both clients, so the client sets the "
                     "pace; " + _turns_note(runs["client vs picows"]), **extra),
            row("harness", f"echo {label}: whole wslab stack vs picows ceiling", stack,
                "msg/s", peer="picows server + client (ceiling)", peer_value=ceiling,
                ratio=turn_ratio(runs["wslab"], runs["picows"]),
                series="wslab server + wslab client", peer_series="picows server + client",
                note=f"picows {ceiling * mb:.1f} MB/s each way; "
                     + _turns_note(runs["picows"]), **extra),
        ]
    else:
        rows.append(row("harness", f"echo {label}: picows ceiling", float("nan"), "msg/s",
                        peer="picows server + client (ceiling)",
                        note="not measured: picows is not installed (pip install picows)",
                        **extra))
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    have_picows = importlib.util.find_spec("picows") is not None
    plain = TuningConfig().updated({"compression.algorithm": "none"})
    # 16 KiB is the limit that binds: the message cap is raised above 16 KiB / 64 B.
    batched = plain.updated({"batching.strategy": "hybrid", "batching.interval_ms": 2,
                             "batching.max_bytes": 16384, "batching.max_messages": 1024})
    repeats = 3 if quick else 5
    # The batching pair sends more, the same count in quick mode as in the full run:
    # batched, 50,000 messages take about 70 ms, where a connection's set-up, its last
    # batch's timer and its closing handshake weigh on the rate (quick runs at 50,000 read
    # 4.3-5.0x where 200,000 read 5.8x on the same build). Both sides send the same count.
    n64 = 200_000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        work = Path(tmp)
        plain_cfg, batched_cfg = work / "plain.yaml", work / "batched.yaml"
        plain.save(plain_cfg)
        batched.save(batched_cfg)
        runs: dict[int, dict[str, list[float]]] = {
            size: {k: [] for k in ("wslab", "peer server", "peer", "picows", "client cpu",
                                   "peer client cpu", "client vs picows",
                                   "peer client vs picows")}
            for size in SIZES}
        plain64: list[dict[str, Any]] = []
        batched64: list[dict[str, Any]] = []
        # Every server up for the whole run (an idle server costs nothing), so that the
        # runs of each turn follow one another.
        mine = servers.enter_context(_wslab_server(plain_cfg))
        fast = servers.enter_context(_wslab_server(batched_cfg))
        peer = servers.enter_context(_script_server(PEER_SERVER))
        ceiling = servers.enter_context(_script_server(PICOWS_SERVER)) if have_picows else None
        # One short untimed run against each server: first use costs nobody a turn.
        _wslab_client(mine.port, 1000, 64, plain_cfg, work)
        _wslab_client(fast.port, 1000, 64, batched_cfg, work)
        _wslab_client(peer.port, 1000, 64, plain_cfg, work)
        _script_client(PEER_CLIENT, peer.port, 1000, 64)
        if ceiling is not None:
            _script_client(PICOWS_CLIENT, ceiling.port, 1000, 64)
        for _ in range(repeats):
            for size in SIZES:
                n = _count(size, quick)
                r = runs[size]
                if size == 64:  # the 5x ratio's pair, back to back
                    batched64.append(_wslab_client(fast.port, n64, 64, batched_cfg, work))
                    plain64.append(_wslab_client(mine.port, n64, 64, plain_cfg, work))
                got = _wslab_client(mine.port, n, size, plain_cfg, work)
                r["wslab"].append(got["msg_s"])
                alone = _wslab_client(peer.port, n, size, plain_cfg, work)
                r["peer server"].append(alone["msg_s"])
                r["client cpu"].append(alone["msg_cpu_s"])
                theirs = _script_client(PEER_CLIENT, peer.port, n, size)
                r["peer"].append(theirs["msg_s"])
                r["peer client cpu"].append(theirs["msg_cpu_s"])
                if ceiling is not None:
                    r["client vs picows"].append(
                        _wslab_client(ceiling.port, n, size, plain_cfg, work)["msg_s"])
                    r["peer client vs picows"].append(
                        _script_client(PEER_CLIENT, ceiling.port, n, size)["msg_s"])
                    r["picows"].append(
                        _script_client(PICOWS_CLIENT, ceiling.port, n, size)["msg_s"])
        for size in SIZES:
            rows += _size_rows(size, runs[size], _count(size, quick))
    fast_msg_s = [r["msg_s"] for r in batched64]
    plain_msg_s = [r["msg_s"] for r in plain64]
    batch_ratio = turn_ratio(fast_msg_s, plain_msg_s)
    section = "batching, 64 B echo"
    return [
        *rows,
        row("harness", "echo 64 B, hybrid 2 ms / 16 KiB: msg/s", median(fast_msg_s), "msg/s",
            peer="wslab harness unbatched", peer_value=median(plain_msg_s), ratio=batch_ratio,
            target="ratio >= 5", ok=batch_ratio >= 5, section=section,
            note=_turns_note(fast_msg_s)),
        row("harness", "TCP data segments per message, hybrid (kernel counters)",
            median(r["segs_per_msg"] for r in batched64), "segments/msg", peer="unbatched",
            peer_value=median(r["segs_per_msg"] for r in plain64),
            ratio=turn_ratio([r["segs_per_msg"] for r in batched64],
                             [r["segs_per_msg"] for r in plain64]),
            section=section, note=_turns_note(fast_msg_s)),
    ]


if __name__ == "__main__":
    main(run)
