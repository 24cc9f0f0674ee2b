"""Helpers for the probe tests: start a stack's echo server with a hidden config, probe it.

Servers run as child processes in their own session (``tests/tune/export_support.py``'s
``start``/``stop``), bind 127.0.0.1 only, and are stopped by the fixture that started
them. The probe runs with short timeouts so that the whole directory stays quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services import node_and_npm
from tune.export_support import (
    ensure_node_ws,
    free_port,
    node_env,
    read_port,
    start,
    stop,
)

from wslab.harness.probe import ProbeOptions, run_probe
from wslab.harness.probe_wire import parse_target

HERE = Path(__file__).parent
FAST = dict(timeout=2.0, idle_wait=1.6, size_cap=1 << 20)


@contextmanager
def python_stack(stack: str, options: dict[str, Any]) -> Iterator[int]:
    """An echo server of ``stack`` (``stack_servers.py``) with ``options``; its port."""
    port = free_port()
    proc = start([sys.executable, str(HERE / "stack_servers.py"), stack, str(port),
                  json.dumps(options)], cwd=HERE.parents[1])
    try:
        yield read_port(proc)
    finally:
        stop(proc)


@contextmanager
def node_ws(options: dict[str, Any]) -> Iterator[int]:
    """A Node ``ws`` echo server with ``options`` (``new WebSocketServer({...})``)."""
    node, npm = node_and_npm()
    modules = ensure_node_ws(npm)
    port = free_port()
    proc: subprocess.Popen[str] = start([node, str(HERE / "ws_server.js"), str(port),
                                         json.dumps(options)], cwd=HERE,
                                        env=node_env(modules))
    try:
        yield read_port(proc)
    finally:
        stop(proc)


def probe(url: str, **overrides: Any) -> dict[str, Any]:
    """The probe's report on ``url`` with the tests' short timeouts."""
    return run_probe(parse_target(url), ProbeOptions(**{**FAST, **overrides}))


def matrix_row(report: dict[str, Any], label: str) -> dict[str, Any]:
    return next(r for r in report["matrix"] if r["offer"] == label)
