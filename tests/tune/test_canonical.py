"""Canonical configs: the rule tables checked against the simulator, and the sweep's fold.

Every cell of ``wslab/tune/canonical.py``'s tables is checked by simulating a small trace
twice, with one field at its default and at another value: the two runs must send the same
frames and bytes (and need the same memory) exactly when the two configs have the same
canonical form. The expected answer comes from the simulator, not from the table.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.model import Message, Trace
from wslab.tune.canonical import (
    canonical,
    canonical_key,
    canonical_point,
    plan_points,
    relevant_fields,
)
from wslab.tune.demo import DEMO_SPACE
from wslab.tune.space import Space
from wslab.tune.sweep import point_row

WORDS = ["hello", "price", "update", "ready", "room", "moved", "to", "the", "meeting", "now"]


def _trace() -> Trace:
    """Every 2 ms a JSON message of 30..300 bytes, both directions, all priorities."""
    rng = random.Random(11)
    msgs = []
    for i in range(360):
        kind = ("chat", "tick")[i % 2]
        body = {"type": kind, "seq": i, "user": f"u{rng.randint(1, 9)}",
                "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))}
        msgs.append(Message(i * 0.002, "c2s" if i % 3 == 2 else "s2c", kind,
                            ("critical", "normal", "background")[(i // 2) % 3],
                            json.dumps(body).encode(), True))
    return Trace(msgs)


TRACE = _trace()
SIGNATURE = ("messages", "frames", "payload_bytes", "compressed_bytes", "ws_bytes",
             "tcp_bytes", "tcp_segments", "mem_kib_per_conn", "dropped", "frames_plain",
             "frames_compressed", "plain_keys")
"""What a run sends and holds, without the CPU-timed figures (latency, CPU)."""

_RUNS: dict[str, tuple[Any, ...]] = {}


def signature(config: TuningConfig) -> tuple[Any, ...]:
    key = json.dumps(config.to_dict(), sort_keys=True)
    if key not in _RUNS:
        row = point_row(config, simulate(TRACE, config, verify=False).summary)
        _RUNS[key] = tuple(row[k] for k in SIGNATURE)
    return _RUNS[key]


# One value per field that changes what a config does wherever the field matters.
COMPRESSION_ALT: dict[str, Any] = {
    "server_max_window_bits": 9, "client_max_window_bits": 9, "mem_level": 1, "level": 1,
    "server_no_context_takeover": True, "client_no_context_takeover": True,
    "zstd_level": 19, "zstd_window_log": 10, "zstd_dict_bytes": 1024, "policy": "never",
}
BATCHING_ALT: dict[str, Any] = {
    "interval_ms": 3, "max_bytes": 300, "max_messages": 2, "max_hold_ms": 3,
    "priority_interval_ms": {"critical": 0, "normal": 3, "background": 40},
    "envelope": "length-prefixed", "background_queue_limit": 1,
}
ALGORITHMS = ("none", "permessage-deflate", "zstd-stream", "zstd-dict")
STRATEGIES = ("none", "time", "size", "count", "hybrid", "priority")

CASES: list[tuple[dict[str, Any], str, Any]] = [
    *(({"compression.algorithm": a}, f"compression.{f}", v)
      for a in ALGORITHMS for f, v in COMPRESSION_ALT.items()),
    *(({"compression.algorithm": a, "compression.policy": p}, "compression.threshold_bytes",
       150) for a in ("permessage-deflate", "zstd-stream")
      for p in ("never", "always", "threshold", "adaptive")),
    *(({"batching.strategy": s}, f"batching.{f}", v)
      for s in STRATEGIES for f, v in BATCHING_ALT.items()),
]


@pytest.mark.parametrize(("context", "field", "value"), CASES,
                         ids=[f"{next(iter(c.values()))}-{list(c.values())[-1]}-{f}"
                              for c, f, _ in CASES])
def test_rule_table_matches_the_simulator(context: dict[str, Any], field: str,
                                          value: Any) -> None:
    plain = TuningConfig().updated(context)
    moved = plain.updated({field: value})
    same_canonical = canonical(plain) == canonical(moved)
    same_run = signature(plain) == signature(moved)
    assert same_run == same_canonical, (
        f"{field}={value!r} under {context}: the simulator says "
        f"{'it cannot' if same_run else 'it can'} matter, the canonical form says "
        f"{'it cannot' if same_canonical else 'it can'}")


@pytest.mark.parametrize(("a", "b"), [
    ({"compression.level": -1}, {"compression.level": 6}),
    ({"compression.policy": "threshold", "compression.threshold_bytes": 0},
     {"compression.policy": "always"}),
    ({"compression.policy": "adaptive", "compression.threshold_bytes": 5},
     {"compression.policy": "adaptive", "compression.threshold_bytes": 0}),
])
def test_value_aliases_are_one_config_and_one_run(a: dict[str, Any],
                                                  b: dict[str, Any]) -> None:
    ca, cb = TuningConfig().updated(a), TuningConfig().updated(b)
    assert ca != cb
    assert canonical_key(ca) == canonical_key(cb)
    assert signature(ca) == signature(cb)


def test_canonical_keeps_scaling_and_link_and_is_idempotent() -> None:
    config = TuningConfig().updated({"compression.algorithm": "none",
                                     "compression.mem_level": 9, "link.profile": "4g",
                                     "scaling.max_connections": 7})
    canon = canonical(config)
    assert canon.compression.mem_level == TuningConfig().compression.mem_level
    assert (canon.scaling, canon.link) == (config.scaling, config.link)
    assert canonical(canon) == canon
    assert relevant_fields(canon) == {"batching.strategy", "compression.algorithm"}


def test_canonical_point_stands_for_every_point_it_folds() -> None:
    base = TuningConfig().updated({"link.profile": "4g",
                                   "compression.server_max_window_bits": 10})
    for planned in plan_points(Space.from_dict(DEMO_SPACE).grid(), base):
        assert set(planned.point) <= set(DEMO_SPACE)
        assert canonical_key(base.updated(planned.overrides)) == planned.key
        assert base.updated(planned.overrides) == canonical(base.updated(planned.overrides))
        for point in planned.requested:
            config = base.updated(point)
            assert canonical_key(config) == planned.key
            assert canonical_key(base.updated(canonical_point(point, config))) == planned.key
