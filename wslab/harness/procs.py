"""Entry points for the processes ``wslab bench`` starts: a server and a load client.

What lives here: two small command lines (``python -m wslab.harness.procs server ...`` and
``... client ...``) that run a :class:`~wslab.harness.server.LiveServer` or a
:class:`~wslab.harness.client.LoadClient` in their own process and leave their logs in a
directory for the orchestrator (``bench.py``) to join. The server prints its port as its
first line and stops cleanly on SIGTERM or SIGINT, saving its logs. For ``zstd-dict`` both
take ``--dictionaries PATH``, the pre-shared :class:`~wslab.codecs.zstd_dict.DictionarySet`
file; a bad file or a missing set is one ``error:`` line on stderr and exit code 2.

The same command line parses the two roles ``wslab scale`` (``scale.py``) starts,
``worker`` and ``holder``; what they do is ``scale_roles.py``, driven by the JSON-lines
protocol of ``commands.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.client import LoadClient, run_load
from wslab.harness.scale_roles import fail, holder_role, worker_role
from wslab.harness.server import LiveServer
from wslab.traces.io import read_trace

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

DICTIONARIES_HELP = "zstd-dict: the pre-shared DictionarySet JSON file (both sides load it)"


def _dictionaries(path: str | None) -> DictionarySet | None:
    """The DictionarySet file named by ``--dictionaries``, or None (zstandard only if given)."""
    if not path:
        return None
    from wslab.codecs.zstd_dict import DictionarySet

    return DictionarySet.load(path)


def build_server(args: argparse.Namespace) -> LiveServer:
    """The server the ``server`` role runs (raises ``WslabError`` on a bad config)."""
    config = TuningConfig.load(args.config)
    trace = read_trace(args.trace) if args.trace else None
    return LiveServer(config, scenario=args.scenario, trace=trace, speed=args.speed,
                      host=args.host, port=args.port, expect_clients=args.expect_clients,
                      rooms=args.rooms, dictionaries=_dictionaries(args.dictionaries),
                      # rows per message only where they will be written: without a log
                      # directory they would grow for as long as it runs, unread
                      record=args.log_dir is not None)


def _server(args: argparse.Namespace) -> int:
    try:
        server = build_server(args)
    except WslabError as exc:
        return fail(str(exc))

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
        return fail(str(exc))
    result = run_load(client)
    if args.log_dir:
        import pandas as pd

        from wslab.tables import write_table

        client.recorder.save(args.log_dir, args.prefix)
        write_table(pd.DataFrame(result.connections),
                    Path(args.log_dir) / f"{args.prefix}-connections.parquet")
    errors = [c["error"] for c in result.connections if c.get("error")]
    received = sum(c.get("messages_received", 0) for c in result.connections)
    segments = sum(c.get("tcp_data_segs_out") or 0 for c in result.connections)
    print(json.dumps({"connections": len(result.connections), "errors": len(errors),
                      "first_error": errors[0] if errors else None,
                      "elapsed_s": result.finished - result.started, "cpu_s": result.cpu_s,
                      "messages_sent": sum(c.get("messages_sent", 0)
                                           for c in result.connections),
                      "messages_received": received, "tcp_data_segs_out": segments}),
          flush=True)
    return 0


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
    args = parser.parse_args(argv)
    roles_map = {"server": _server, "client": _client, "worker": worker_role,
                 "holder": holder_role}
    return roles_map[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
