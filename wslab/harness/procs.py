"""Entry points for the processes ``wslab bench`` starts: a server and a load client.

What lives here: two small command lines (``python -m wslab.harness.procs server ...`` and
``... client ...``) that run a :class:`~wslab.harness.server.LiveServer` or a
:class:`~wslab.harness.client.LoadClient` in their own process and leave their logs in a
directory for the orchestrator (``bench.py``) to join. The server prints its port as its
first line and stops cleanly on SIGTERM or SIGINT, saving its logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.server import LiveServer
from wslab.traces.io import read_trace


def _server(args: argparse.Namespace) -> int:
    config = TuningConfig.load(args.config)
    trace = read_trace(args.trace) if args.trace else None

    async def main() -> None:
        server = LiveServer(config, scenario=args.scenario, trace=trace, speed=args.speed,
                            host=args.host, port=args.port, expect_clients=args.expect_clients,
                            rooms=args.rooms)
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
    client = LoadClient(args.url, config, trace=trace, connections=args.connections,
                        rate=args.rate, speed=args.speed, expect_s2c=args.expect_s2c,
                        drain_timeout=args.drain_timeout, prefix=args.prefix,
                        source_addresses=args.source or None, allow_remote=args.allow_remote)
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
    c.add_argument("--log-dir")
    args = parser.parse_args(argv)
    return _server(args) if args.role == "server" else _client(args)


if __name__ == "__main__":
    sys.exit(main())
