"""Entry points for the processes ``wslab bench`` starts: a server and a load client.

What lives here: two small command lines (``python -m wslab.harness.procs server ...`` and
``... client ...``) that run a :class:`~wslab.harness.server.LiveServer` or a
:class:`~wslab.harness.client.LoadClient` in their own process and leave their logs in a
directory for the orchestrator (``bench.py``) to join. The server prints its port as its
first line and stops cleanly on SIGTERM or SIGINT, saving its logs. For ``zstd-dict`` both
take ``--dictionaries PATH``, the pre-shared :class:`~wslab.codecs.zstd_dict.DictionarySet`
file; a bad file or a missing set is one ``error:`` line on stderr and exit code 2.

``wslab scale`` (``scale.py``) starts two more roles, driven by the JSON-lines protocol of
``commands.py`` on stdin, one JSON line answered per command: ``worker`` (a server joined
to the cluster through a broker and the connection registry; it writes each broadcast as
one prepared frame, ``fanout.py``, unless ``--session-broadcast``) and ``holder`` (a
:class:`~wslab.harness.holder.HoldClient` on uvloop unless ``--loop asyncio``; it prints a
``ready`` line after opening its connections). A malformed command line is answered with
an ``error`` naming what is wrong with it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import commands as c
from wslab.harness.client import LoadClient
from wslab.harness.gcfreeze import GcFreezer, GcPauses
from wslab.harness.server import LiveServer
from wslab.traces.io import read_trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet
    from wslab.harness.holder import HoldClient
    from wslab.harness.registry import ClusterNode

DICTIONARIES_HELP = "zstd-dict: the pre-shared DictionarySet JSON file (both sides load it)"


def _dictionaries(path: str | None) -> DictionarySet | None:
    """The DictionarySet file named by ``--dictionaries``, or None (zstandard only if given)."""
    if not path:
        return None
    from wslab.codecs.zstd_dict import DictionarySet

    return DictionarySet.load(path)


def _server(args: argparse.Namespace) -> int:
    config = TuningConfig.load(args.config)
    trace = read_trace(args.trace) if args.trace else None
    try:
        dictionaries = _dictionaries(args.dictionaries)
        server = LiveServer(config, scenario=args.scenario, trace=trace, speed=args.speed,
                            host=args.host, port=args.port, expect_clients=args.expect_clients,
                            rooms=args.rooms, dictionaries=dictionaries)
    except WslabError as exc:
        return _fail(str(exc))

    async def main() -> None:
        port = await server.start()
        print(port, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()  # every handler finishes, adding its counts to the server's
        totals = {"compress_ns": server.compress_ns,
                  "compress_in": server.metrics.counts["compressed_bytes_in"],
                  "compress_out": server.metrics.counts["compressed_bytes_out"]}
        if args.log_dir:
            server.save_logs(args.log_dir)
            (Path(args.log_dir) / "server.json").write_text(json.dumps(
                {**totals, "admission": server.admission.snapshot(),
                 "alerts": [a.message for a in server.metrics.alerts]}))

    asyncio.run(main())
    return 0


def _client(args: argparse.Namespace) -> int:
    config = TuningConfig.load(args.config)
    trace = read_trace(args.trace) if args.trace else None
    try:
        client = LoadClient(args.url, config, trace=trace, connections=args.connections,
                            rate=args.rate, speed=args.speed, expect_s2c=args.expect_s2c,
                            drain_timeout=args.drain_timeout, prefix=args.prefix,
                            source_addresses=args.source or None,
                            allow_remote=args.allow_remote, c2s_only=args.c2s_only,
                            dictionaries=_dictionaries(args.dictionaries))
    except WslabError as exc:
        return _fail(str(exc))
    result = asyncio.run(client.run())
    if args.log_dir:
        import pandas as pd

        from wslab.tune.results import write_table

        client.recorder.save(args.log_dir, args.prefix)
        write_table(pd.DataFrame(result.connections),
                    Path(args.log_dir) / f"{args.prefix}-connections.parquet")
    errors = [c["error"] for c in result.connections if c.get("error")]
    received = sum(c.get("messages_received", 0) for c in result.connections)
    segments = sum(c.get("tcp_data_segs_out") or 0 for c in result.connections)
    print(json.dumps({"connections": len(result.connections), "errors": len(errors),
                      "first_error": errors[0] if errors else None,
                      "elapsed_s": result.finished - result.started,
                      "messages_sent": sum(c.get("messages_sent", 0)
                                           for c in result.connections),
                      "messages_received": received, "tcp_data_segs_out": segments}),
          flush=True)
    return 0


Handler = Callable[[c.Command], Awaitable[Any]]


async def _command_loop(handle: Handler) -> None:
    """Answer JSON commands from stdin until ``quit``/``close``, EOF or SIGTERM."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    while True:
        line_task = asyncio.create_task(reader.readline())
        await asyncio.wait({line_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not line_task.done():
            line_task.cancel()
            return
        line = line_task.result()
        if not line:
            return
        try:
            answer = await handle(c.parse_command(line))
        except Exception as exc:  # answered, so the orchestrator can report it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        if answer is None:
            print(json.dumps({"ok": True}), flush=True)
            return
        print(json.dumps(answer), flush=True)


def _fail(message: str) -> int:
    print(json.dumps({"error": message}), flush=True)
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def _worker(args: argparse.Namespace) -> int:
    from wslab.harness.broker import connect_broker
    from wslab.harness.loadplan import raise_nofile
    from wslab.harness.registry import ClusterNode, MemoryRegistry, RedisRegistry

    raise_nofile()
    config = TuningConfig.load(args.config)

    async def main() -> int:
        try:
            broker = await connect_broker(args.broker, args.redis_url)
        except WslabError as exc:
            return _fail(str(exc))
        registry = (RedisRegistry(broker.redis, args.namespace)  # type: ignore[union-attr]
                    if args.broker == "redis" else MemoryRegistry())
        server = LiveServer(config, scenario="echo", host=args.host, port=args.port,
                            reuse_port=args.reuse_port, shared_broadcast=args.shared_broadcast,
                            record=False)  # integrity is counted at the holders
        node = ClusterNode(server, broker, registry, args.worker_id, args.namespace,
                           prepared=not args.session_broadcast)
        pauses = GcPauses()  # timed with or without the freeze, to compare the two
        pauses.start()
        freezer = None
        if args.gc_freeze:
            freezer = GcFreezer(lambda: server.metrics.active,
                                lambda: server.metrics.counts["connections_total"]
                                - server.metrics.active)
        try:
            await node.start()
            if freezer is not None:
                freezer.start()
            try:
                port = await server.start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return _fail(f"port {args.port} on {args.host} is already in use")
                return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
            print(port, flush=True)

            async def handle(cmd: c.Command) -> Any:
                return await _worker_command(cmd, server, node, args, freezer, pauses)

            await _command_loop(handle)
        finally:
            pauses.stop()
            if freezer is not None:
                await freezer.stop()
            await server.stop()
            await node.stop()
            await broker.close()
        return 0

    return asyncio.run(main())


def _message(kind: str, seq: int, size: int, **extra: Any) -> bytes:
    body = {"k": kind, "seq": seq, "t": time.monotonic(), **extra}
    raw = json.dumps(body)
    pad = max(0, size - len(raw) - 10)
    body["pad"] = "x" * pad
    body["t"] = time.monotonic()
    return json.dumps(body).encode()


async def _worker_command(cmd: c.Command, server: LiveServer, node: ClusterNode,
                          args: argparse.Namespace,
                          freezer: GcFreezer | None = None,
                          pauses: GcPauses | None = None) -> Any:
    """One worker command's answer (None for ``quit``)."""
    if isinstance(cmd, c.Broadcast):
        for i in range(cmd.count):
            if i:
                await asyncio.sleep(cmd.interval_s)
            await node.broadcast(_message("b", cmd.start_seq + i, cmd.size, w=args.worker_id))
        return c.Sent(sent=cmd.count)
    if isinstance(cmd, c.Direct):
        exclude = args.worker_id if args.broker == "redis" else None
        targets = await node.registry.sample(cmd.count, exclude)
        routes: dict[str, int] = {}
        for seq, conn in enumerate(targets):
            route = await node.send_direct(conn, _message("d", seq, cmd.size, to=conn))
            routes[route] = routes.get(route, 0) + 1
            await asyncio.sleep(cmd.interval_s)
        return c.DirectSent(sent=len(targets), routes=routes)
    if isinstance(cmd, c.Stats):
        return await _worker_stats(server, node, args.worker_id, freezer, pauses)
    if isinstance(cmd, c.Purge):
        return c.Purged(purged=await node.registry.purge_worker(cmd.worker))
    if isinstance(cmd, c.Quit):
        return None
    return {"error": f"a worker does not take {cmd.cmd.value!r}"}


async def _worker_stats(server: LiveServer, node: ClusterNode, worker: str,
                        freezer: GcFreezer | None, pauses: GcPauses | None) -> c.WorkerStats:
    await node.settle()
    exts = [s.ext for s in server.sessions.values() if s.ext is not None]
    shared = server.shared
    return c.WorkerStats(
        worker=worker, held=len(server.sessions), registered=await node.registry.count(),
        counts=node.counts, fanout_ms=[round(1e3 * t, 3) for t in node.fanout_s],
        fanout_cpu_ms=[round(1e3 * t, 3) for t in node.fanout_cpu_s],
        fanout_prepared=node.fanout_prepared, fanout_pushed=node.fanout_pushed,
        gc=freezer.snapshot() if freezer is not None else None,
        gc_pauses=pauses.snapshot() if pauses is not None else None,
        admission=server.admission.snapshot(), metrics=dict(server.metrics.counts),
        compress_ns=server.compress_ns + sum(e.compressor.encode_ns for e in exts),
        compressed_frames=sum(e.compressor.compressed for e in exts),
        shared_frames=sum(e.shared_frames for e in exts),
        shared_compressions=shared.compressions if shared else 0,
        shared_encode_ns=shared.encode_ns if shared else 0)


def _holder(args: argparse.Namespace) -> int:
    from wslab.harness.holder import HoldClient
    from wslab.harness.loadplan import raise_nofile

    raise_nofile()
    config = TuningConfig.load(args.config)

    async def main() -> int:
        client = HoldClient(args.url, config, connections=args.connections, rate=args.rate,
                            concurrency=args.concurrency, source_addresses=args.source or None,
                            prefix=args.prefix)
        # The holders are the instrument: a full GC walk over thousands of held connections
        # would show up as fan-out latency, so they keep their heap frozen as the worker does.
        freezer = GcFreezer(lambda: len(client.open),
                            lambda: sum(client.stats.close_codes.values()))
        freezer.start()
        stats = await client.ramp()
        ready = c.Ready(event="ready", opened=stats.opened, failed=stats.failed,
                        first_error=stats.first_error, started=stats.started,
                        done=[round(t, 4) for t in stats.done], loop=args.loop)
        print(json.dumps(ready), flush=True)

        async def handle(cmd: c.Command) -> Any:
            return await _holder_command(cmd, client)

        await _command_loop(handle)
        await freezer.stop()
        await client.close()
        return 0

    return run_loop(main(), args.loop)


async def _holder_command(cmd: c.Command, client: HoldClient) -> Any:
    """One holder command's answer (None for ``close``)."""
    stats = client.stats
    if isinstance(cmd, c.Count):
        return c.Counted(b=client.received("b"), d=client.received("d"),
                         open=len(client.open), closed_early=stats.closed_early,
                         close_codes=stats.close_codes)
    if isinstance(cmd, c.Wait):
        deadline = time.monotonic() + cmd.timeout
        while time.monotonic() < deadline and \
                client.received(cmd.kind) < cmd.per_connection * len(client.open):
            await asyncio.sleep(0.05)
        return c.Waited(received=client.received(cmd.kind), open=len(client.open))
    if isinstance(cmd, c.Report):
        return c.Receipts(receipts=stats.receipts,  # type: ignore[typeddict-item]
                          alive=sorted(client.open), closed_early=stats.closed_early,
                          close_codes=stats.close_codes, other_messages=client.other_messages)
    if isinstance(cmd, c.Close):
        await client.close()
        return None
    return {"error": f"a holder does not take {cmd.cmd.value!r}"}


LOOPS = ("uvloop", "asyncio")


def run_loop(main: Coroutine[Any, Any, int], loop: str) -> int:
    """Run ``main`` on uvloop's event loop or asyncio's own (``loop``: one of LOOPS)."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    """Parse the role and its options, then run it."""
    parser = argparse.ArgumentParser(prog="python -m wslab.harness.procs")
    roles = parser.add_subparsers(dest="role", required=True)
    s = roles.add_parser("server")
    s.add_argument("--config", required=True)
    s.add_argument("--trace")
    s.add_argument("--scenario", default="replay")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--expect-clients", type=int, default=1)
    s.add_argument("--rooms", type=int, default=4)
    s.add_argument("--log-dir")
    s.add_argument("--dictionaries", help=DICTIONARIES_HELP)
    c = roles.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--config", required=True)
    c.add_argument("--trace")
    c.add_argument("--connections", type=int, default=1)
    c.add_argument("--rate", type=float, default=200.0)
    c.add_argument("--speed", type=float, default=1.0)
    c.add_argument("--expect-s2c", type=int)
    c.add_argument("--drain-timeout", type=float, default=5.0)
    c.add_argument("--prefix", default="client")
    c.add_argument("--source", action="append")
    c.add_argument("--allow-remote", action="store_true")
    c.add_argument("--c2s-only", action="store_true")
    c.add_argument("--log-dir")
    c.add_argument("--dictionaries", help=DICTIONARIES_HELP)
    w = roles.add_parser("worker")
    w.add_argument("--config", required=True)
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, default=0)
    w.add_argument("--worker-id", default="0")
    w.add_argument("--broker", default="memory")
    w.add_argument("--redis-url")
    w.add_argument("--namespace", default="wslab")
    w.add_argument("--reuse-port", action="store_true")
    w.add_argument("--shared-broadcast", action="store_true")
    w.add_argument("--gc-freeze", action="store_true")
    w.add_argument("--session-broadcast", action="store_true",
                   help="every broadcast through each connection's session, no prepared frame")
    h = roles.add_parser("holder")
    h.add_argument("--url", required=True)
    h.add_argument("--config", required=True)
    h.add_argument("--connections", type=int, default=1)
    h.add_argument("--rate", type=float, default=0.0)
    h.add_argument("--concurrency", type=int, default=200)
    h.add_argument("--prefix", default="h")
    h.add_argument("--source", action="append")
    h.add_argument("--loop", choices=LOOPS, default="uvloop",
                   help="the holder's event loop (it is the instrument, not the server)")
    args = parser.parse_args(argv)
    roles_map = {"server": _server, "client": _client, "worker": _worker, "holder": _holder}
    return roles_map[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
