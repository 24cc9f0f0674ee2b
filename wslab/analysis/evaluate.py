"""How well each compression policy does against the oracle, on real traces.

What lives here: replaying a trace through a :class:`CompressionSelector` with real deflate
calls, counting bytes saved and the CPU spent compressing, and the same for the oracle
(``bundled_traces`` is re-exported for convenience). Nothing here decides (that is
``selector.py``) or predicts.

The oracle is the best per-message choice in hindsight, defined per mode:

- ``no-context`` (the default, and the one that is a true upper bound): every message is
  compressed alone (``*_no_context_takeover``), so its compressed size ``c`` does not
  depend on earlier choices. The oracle compresses a message iff ``c < n`` (it shrinks at
  all; the frame header is the same either way). No policy can save more bytes, because
  every policy's saving is a sum of ``n - c`` over a subset of the messages and the oracle
  takes exactly the positive terms.
- ``context``: one deflate stream per direction, skipped messages do not touch it
  (RFC 7692 with RSV1 = 0). A message's size then depends on which earlier messages were
  compressed, so the best path is a search over 2^n choices. The oracle here is *greedy*:
  for each message it compresses on a copy of its current context and keeps the result
  iff the message shrinks. That is a strong reference, not a bound: a policy can beat it
  when skipping now would have let a later message match better.

CPU is ``time.perf_counter_ns`` around each real compress call (and, separately, around each
``decide`` call), summed; the oracle's CPU counts only the messages it chose to compress.
Each timed call also carries one clock read (~0.1-0.2 us), which is why even ``never``
shows a small ``decide_cpu_ms``: compare policies with each other, not with zero.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pandas as pd

from wslab.codecs.deflate import DeflateEncoder
from wslab.selector import CompressionSelector
from wslab.traces.model import Trace

from .bundled import bundled_traces as bundled_traces
from .ratios import CodecSettings

Mode = Literal["no-context", "context"]

DEFAULT_POLICIES: dict[str, Callable[[], CompressionSelector]] = {
    "never": lambda: CompressionSelector("never"),
    "always": lambda: CompressionSelector("always"),
    "threshold-1024": lambda: CompressionSelector("threshold", threshold_bytes=1024),
    "threshold-128": lambda: CompressionSelector("threshold", threshold_bytes=128),
    "adaptive": lambda: CompressionSelector("adaptive"),
}

def _encoders(settings: CodecSettings, mode: Mode) -> dict[str, Callable[[bytes], bytes]]:
    alone = mode == "no-context"
    return {
        d: DeflateEncoder(settings.window_bits, settings.mem_level, settings.level,
                          no_context_takeover=alone).encode
        for d in ("s2c", "c2s")
    }


def run_policy(
    trace: Trace, selector: CompressionSelector, settings: CodecSettings, mode: Mode
) -> dict[str, Any]:
    """Replay ``trace`` through ``selector`` with real deflate calls; totals as a dict."""
    enc = _encoders(settings, mode)
    clock = time.perf_counter_ns
    decide, observe = selector.decide, selector.observe
    sent = chosen = decide_ns = compress_ns = 0
    for m in trace.messages:
        p = m.payload
        t0 = clock()
        yes = decide(m.type, p)
        t1 = clock()
        decide_ns += t1 - t0
        if yes:
            c = len(enc[m.dir](p))
            compress_ns += clock() - t1
            observe(m.type, len(p), c)
            sent += c
            chosen += 1
        else:
            sent += len(p)
    return {"compressed_messages": chosen, "sent_bytes": sent,
            "compress_cpu_ms": compress_ns / 1e6, "decide_cpu_ms": decide_ns / 1e6}


def run_oracle(trace: Trace, settings: CodecSettings, mode: Mode) -> dict[str, Any]:
    """The oracle of ``mode`` (see the module docstring); totals as a dict."""
    clock = time.perf_counter_ns
    sent = chosen = compress_ns = 0
    if mode == "no-context":
        enc = _encoders(settings, mode)
        for m in trace.messages:
            t0 = clock()
            c = len(enc[m.dir](m.payload))
            spent = clock() - t0
            if c < len(m.payload):
                sent += c
                chosen += 1
                compress_ns += spent
            else:
                sent += len(m.payload)
    else:
        streams = {d: zlib.compressobj(settings.level, zlib.DEFLATED, -settings.window_bits,
                                       settings.mem_level) for d in ("s2c", "c2s")}
        for m in trace.messages:
            t0 = clock()
            trial = streams[m.dir].copy()
            c = len(trial.compress(m.payload) + trial.flush(zlib.Z_SYNC_FLUSH)) - 4
            spent = clock() - t0
            if c < len(m.payload):
                streams[m.dir] = trial
                sent += c
                chosen += 1
                compress_ns += spent
            else:
                sent += len(m.payload)
    return {"compressed_messages": chosen, "sent_bytes": sent,
            "compress_cpu_ms": compress_ns / 1e6, "decide_cpu_ms": 0.0}


def evaluate(
    traces: Mapping[str, Trace],
    *,
    settings: CodecSettings | None = None,
    mode: Mode = "no-context",
    policies: Mapping[str, Callable[[], CompressionSelector]] | None = None,
) -> pd.DataFrame:
    """Every policy, and the oracle, on every trace: one row per (trace, policy).

    Args:
        traces: Traces by name (e.g. :func:`bundled_traces`).
        settings: Deflate settings (defaults: window 12, memLevel 5, level 6).
        mode: ``no-context`` or ``context`` (see the module docstring).
        policies: Name -> factory of a fresh selector (default :data:`DEFAULT_POLICIES`).

    Returns:
        Columns ``trace, policy, mode, messages, payload_bytes, compressed_messages,
        sent_bytes, bytes_saved, saved_fraction, share_of_oracle, compress_cpu_ms,
        decide_cpu_ms``. ``share_of_oracle`` is bytes saved over the oracle's.
    """
    s = settings or CodecSettings()
    chosen = DEFAULT_POLICIES if policies is None else policies
    rows = []
    for name, trace in traces.items():
        total = trace.payload_bytes
        results = {"oracle": run_oracle(trace, s, mode)}
        for pname, factory in chosen.items():
            results[pname] = run_policy(trace, factory(), s, mode)
        best = total - results["oracle"]["sent_bytes"]
        for pname, r in results.items():
            saved = total - r["sent_bytes"]
            rows.append({
                "trace": name, "policy": pname, "mode": mode, "messages": len(trace),
                "payload_bytes": total, "compressed_messages": r["compressed_messages"],
                "sent_bytes": r["sent_bytes"], "bytes_saved": saved,
                "saved_fraction": saved / total if total else 0.0,
                "share_of_oracle": saved / best if best > 0 else float("nan"),
                "compress_cpu_ms": r["compress_cpu_ms"], "decide_cpu_ms": r["decide_cpu_ms"],
            })
    return pd.DataFrame(rows)
