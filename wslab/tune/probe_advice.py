"""What a probed server has against what wslab recommends for it: memory, a table, a diff.

What lives here: the stacks a probe can recognise (:data:`STACKS`: how each names itself
in its ``Server`` header, the export targets that write its config, the zlib settings it
compresses with unless told otherwise), :func:`have_config` (the ``TuningConfig`` a
probe report implies), :func:`recommended_config` (a compression sweep of the trace and
``recommend`` for browsers, or a config the user gives), and :func:`advise`, which puts
both through the simulator on the same trace and returns the comparison table, the
config diff, memory per connection (zlib's formula, ``sweep.memory_estimate_kib``) and
the export command for the server's stack. What must not live here: probing
(``wslab.harness.probe``), printing (``wslab.cli.probe_cmd``).

Stacks (the first target that ``wslab.tune.export`` knows is named):

| stack      | Server header holds | export targets, in order   | zlib level / memLevel     |
|------------|---------------------|----------------------------|---------------------------|
| uvicorn    | ``uvicorn``         | uvicorn, fastapi, websockets| 6 / 8 (a plain factory)  |
| websockets | ``websockets/``     | websockets                 | 6 / 5 (``serve``'s default)|
| aiohttp    | ``aiohttp/``        | aiohttp                    | 6 / 8                     |
| nginx      | ``nginx``           | nginx                      | the upstream's            |
| ws         | (sends none)        | ws                         | 6 / 8                     |
| socket.io  | (sends none)        | socketio-node, socketio    | 6 / 8                     |
| python-socketio | (its server's)  | python-socketio            | 6 / 8                     |

A probe sees windows, context takeover, a size threshold, limits and heartbeats; it
cannot see zlib's level or memLevel, so ``have`` takes them from the stack's row (zlib's
defaults, 6 / 8, when the stack is unknown), and says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.traces.model import Trace


@dataclass(frozen=True)
class Stack:
    """One row of the stack table."""

    name: str
    server_token: str | None
    targets: tuple[str, ...]
    level: int = 6
    mem_level: int = 8


STACKS: tuple[Stack, ...] = (
    Stack("uvicorn", "uvicorn", ("uvicorn", "fastapi", "websockets")),
    Stack("websockets", "websockets/", ("websockets",), mem_level=5),
    Stack("aiohttp", "aiohttp/", ("aiohttp",)),
    Stack("nginx", "nginx", ("nginx",)),
    Stack("ws", None, ("ws",)),
    Stack("socket.io", None, ("socketio-node", "socketio")),
    Stack("python-socketio", None, ("python-socketio",)),
)
UNKNOWN = Stack("unknown", None, ())

COMPARED = (
    "compression.algorithm", "compression.server_max_window_bits",
    "compression.client_max_window_bits", "compression.mem_level", "compression.level",
    "compression.server_no_context_takeover", "compression.client_no_context_takeover",
    "compression.policy", "compression.threshold_bytes", "scaling.max_size",
    "scaling.heartbeat_interval_s", "scaling.heartbeat_timeout_s",
)
"""The knobs of the diff: what a probe can see, plus the zlib settings it assumes."""

METRICS = (("ws_bytes_per_msg", "ws bytes / message"), ("compression_ratio", "compression ratio"),
           ("latency_p99_ms", "p99 latency, ms"), ("cpu_us_per_msg", "CPU µs / message"),
           ("mem_kib_per_conn", "compression memory / connection, KiB"))

SWEEP_SPACE: dict[str, list[Any]] = {
    "compression.algorithm": ["none", "permessage-deflate"],
    "compression.server_max_window_bits": [9, 10, 11, 12, 13, 15],
    "compression.mem_level": [4, 5, 8],
    "compression.server_no_context_takeover": [False, True],
    "compression.policy": ["always", "adaptive"],
}
"""The compression space :func:`recommended_config` sweeps (under two seconds of CPU on
1,500 messages): what a server operator can set on every stack in the table."""


def guess_stack(server_header: str | None, stack: str | None = None) -> Stack:
    """The stack named by ``stack`` (``--stack``), else the one its Server header shows.

    Raises:
        WslabError: ``stack`` names none of :data:`STACKS`.
    """
    if stack is not None:
        for row in STACKS:
            if row.name == stack.lower():
                return row
        raise WslabError(f"probe: unknown stack {stack!r}; known: "
                         f"{', '.join(s.name for s in STACKS)}")
    header = (server_header or "").lower()
    for row in STACKS:
        if row.server_token and row.server_token in header:
            return row
    return UNKNOWN


def export_target(stack: Stack) -> str | None:
    """The first of the stack's targets that ``wslab export`` knows (None: none)."""
    from wslab.tune.export import TARGETS

    return next((t for t in stack.targets if t in TARGETS), None)


def have_config(report: dict[str, Any], stack: Stack) -> TuningConfig:
    """The config the probe report implies (zlib settings from the stack's row)."""
    from wslab.harness.probe_trace import probe_config

    behaviour = report.get("behaviour") or {}
    floor = (behaviour.get("threshold") or {}).get("compressed_from")
    config = probe_config((report.get("server") or {}).get("agreed"), floor,
                          level=stack.level, mem_level=stack.mem_level)
    fields: dict[str, Any] = {}
    largest = (behaviour.get("max_message") or {})
    if largest.get("observed") and not largest.get("capped") and largest.get("largest_accepted"):
        fields["scaling.max_size"] = largest["largest_accepted"]
    idle = behaviour.get("idle") or {}
    if idle.get("ping_interval_s"):
        fields["scaling.heartbeat_interval_s"] = idle["ping_interval_s"]
    if idle.get("pong_timeout_s"):
        fields["scaling.heartbeat_timeout_s"] = idle["pong_timeout_s"]
    if idle.get("observed") and not idle.get("pinged"):
        fields["scaling.heartbeat_interval_s"] = None
    return config.updated(fields)


def recommended_config(trace_path: Path, *, messages: int = 1500, speedup: float = 16.0,
                       link: str = "4g") -> TuningConfig:
    """What ``wslab recommend`` (browsers, the demo's constraints) picks from a sweep of
    :data:`SWEEP_SPACE` on the first ``messages`` of the trace."""
    from wslab.traces.io import write_trace
    from wslab.tune.clients import holdable_config
    from wslab.tune.demo import working_trace
    from wslab.tune.recommend import recommend
    from wslab.tune.space import Space
    from wslab.tune.sweep import run_sweep

    trace = working_trace(trace_path, messages, speedup)
    base = holdable_config(TuningConfig().updated({"link.profile": link}), "browser")
    with tempfile.TemporaryDirectory(prefix="wslab-probe-") as tmp:
        path = Path(tmp) / "trace.jsonl.zst"
        write_trace(trace, path)
        points = Space.from_dict(SWEEP_SPACE, where="probe space").grid()
        table = run_sweep(path, points, Path(tmp) / "sweep.parquet", base=base, workers=1)
    rec = recommend(table, trace=trace, max_p99_ms=250.0, max_kib_per_conn=64.0,
                    max_cpu_us_per_msg=50.0, clients="browser")
    if rec.chosen is None:
        return base
    return rec.config


def _value(config: TuningConfig, dotted: str) -> Any:
    node: Any = config.to_dict()
    for part in dotted.split("."):
        node = node[part]
    return node


def config_diff(have: TuningConfig, want: TuningConfig) -> list[dict[str, Any]]:
    """One row per compared knob: ``field``, ``have``, ``recommended``, ``differs``."""
    return [{"field": name, "have": _value(have, name), "recommended": _value(want, name),
             "differs": _value(have, name) != _value(want, name)} for name in COMPARED]


def diff_text(rows: list[dict[str, Any]]) -> str:
    """The differing knobs as a unified-diff-like text (``-`` have, ``+`` recommended)."""
    lines = ["--- have (probed)", "+++ recommended (wslab)"]
    for row in rows:
        if row["differs"]:
            lines += [f"-{row['field']}: {row['have']}", f"+{row['field']}: {row['recommended']}"]
    return "\n".join(lines) + "\n"


def _simulated(trace: Trace, config: TuningConfig) -> dict[str, Any]:
    from wslab.sim import simulate
    from wslab.tune.sweep import point_row

    row = point_row(config, simulate(trace, config).summary)
    return {name: row.get(name) for name, _ in METRICS}


def advise(report: dict[str, Any], trace_path: Path, *, stack: str | None = None,
           recommended: TuningConfig | None = None, messages: int = 1500,
           speedup: float = 16.0, link: str = "4g") -> dict[str, Any]:
    """Have against recommended, simulated on the same stretch of the trace.

    Args:
        report: A probe report (``wslab.harness.probe``).
        trace_path: The trace both configs are simulated on (and the sweep runs on).
        stack: The server's stack (``--stack``), else guessed from its Server header.
        recommended: Use this config instead of sweeping for one.
        messages, speedup, link: The stretch of trace, as ``wslab demo`` takes it.
    """
    from wslab.tune.demo import working_trace

    row = guess_stack((report.get("handshake") or {}).get("server"), stack)
    have = have_config(report, row).updated({"link.profile": link})
    want = (recommended if recommended is not None else
            recommended_config(trace_path, messages=messages, speedup=speedup, link=link))
    want = want.updated({"link.profile": link})
    trace = working_trace(trace_path, messages, speedup)
    have_m, want_m = _simulated(trace, have), _simulated(trace, want)
    table = [{"metric": label, "key": name, "have": have_m[name], "recommended": want_m[name]}
             for name, label in METRICS]
    diff = config_diff(have, want)
    target = export_target(row)
    assumed = (f"zlib level {row.level} and memLevel {row.mem_level} are {row.name}'s "
               "defaults, assumed: a probe cannot see them") if row is not UNKNOWN else (
        "stack unknown (no Server header that names one; pass --stack): zlib's defaults, "
        "level 6 and memLevel 8, assumed")
    return {
        "stack": row.name, "export_target": target,
        "export_command": (f"wslab export --config recommended.yaml --target {target}"
                           if target else None),
        "memory_kib_per_conn": {"have": have_m["mem_kib_per_conn"],
                                "recommended": want_m["mem_kib_per_conn"]},
        "table": table, "diff": diff, "diff_text": diff_text(diff),
        "recommended_config": want.to_dict(), "have_config": have.to_dict(),
        "trace": str(trace_path), "messages": len(trace), "link": link,
        "assumed": assumed,
    }
