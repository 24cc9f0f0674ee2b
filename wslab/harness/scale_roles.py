"""The two roles ``wslab scale`` starts, driven by JSON lines on stdin: worker and holder.

What lives here: :func:`worker_role` (a :class:`~wslab.harness.server.LiveServer` joined to
the cluster by a :class:`~wslab.harness.registry.ClusterNode`, broadcasts going out as one
prepared frame unless ``--session-broadcast``) and :func:`holder_role` (a
:class:`~wslab.harness.holder.HoldClient`, which prints a ``ready`` line after its ramp),
the loop that reads their commands (``commands.py``; a malformed line is answered with an
``error`` and the loop goes on), each role's answers, and :func:`fail`, the one-line error
every role prints. What must not live here: the command line that picks a role
(``procs.py``), the protocol's definition (``commands.py``), the coordinator
(``scale.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import commands as c
from wslab.harness.eventloop import run_fast
from wslab.harness.gcfreeze import GcFreezer, GcPauses
from wslab.harness.server import LiveServer

if TYPE_CHECKING:
    from wslab.harness.holder import HoldClient
    from wslab.harness.registry import ClusterNode


def fail(message: str) -> int:
    print(json.dumps({"error": message}), flush=True)
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


Handler = Callable[[c.Command], Awaitable[Any]]


def _write_line(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


async def emit(answer: Any) -> None:
    """Write one JSON line to stdout without stopping the loop. The orchestrator reads its
    children's lines in turn, so a line larger than the pipe (a holder's ``ready`` with the
    open time of each of its 12,500 connections is ~150 KB) can wait a long time to be
    read; written from the loop it would block it, and every connection's heartbeat with
    it, until then: the workers then close them all (1011) as dead."""
    await asyncio.to_thread(_write_line, json.dumps(answer) + "\n")


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
            await emit({"ok": True})
            return
        await emit(answer)


def worker_role(args: argparse.Namespace) -> int:
    from wslab.harness.broker import connect_broker
    from wslab.harness.broker_cluster import cluster_registry, connect_cluster_broker
    from wslab.harness.loadplan import raise_nofile
    from wslab.harness.registry import ClusterNode, MemoryRegistry, RedisRegistry

    raise_nofile()
    config = TuningConfig.load(args.config)

    async def main() -> int:
        try:
            broker: Any = (await connect_cluster_broker(args.redis_url)
                           if args.broker == "redis-cluster"
                           else await connect_broker(args.broker, args.redis_url))
        except WslabError as exc:
            return fail(str(exc))
        registry: Any = MemoryRegistry()
        if args.broker == "redis":
            registry = RedisRegistry(broker.redis, args.namespace)
        elif args.broker == "redis-cluster":
            registry = cluster_registry(broker.redis, args.namespace)
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
                    return fail(f"port {args.port} on {args.host} is already in use")
                return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
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

    return run_fast(main())


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
        exclude = args.worker_id if args.broker in ("redis", "redis-cluster") else None
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


def holder_role(args: argparse.Namespace) -> int:
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
                        done=[round(t, 4) for t in stats.done])
        await emit(ready)

        async def handle(cmd: c.Command) -> Any:
            return await _holder_command(cmd, client)

        await _command_loop(handle)
        await freezer.stop()
        await client.close()
        return 0

    return run_fast(main())


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
    if isinstance(cmd, c.Clock):  # the clock every receipt is stamped on
        return c.Clocked(t=time.monotonic())
    if isinstance(cmd, c.Close):
        await client.close()
        return None
    return {"error": f"a holder does not take {cmd.cmd.value!r}"}
