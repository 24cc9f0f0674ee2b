"""The adaptive policy in the simulator: it learns from sizes measured frame by frame.

The simulator compresses each frame as the pipeline releases it and tells the selector the
real size before the next frame is decided (``wslab/compressor.py``), so random blobs are
skipped once measured, and the sequence of decisions is the one the live harness takes
(compared live in ``tests/harness/test_bench.py``).
"""

from __future__ import annotations

import pytest
from mixed_blobs import BLOB_TYPES, blob_trace

from wslab.config import TuningConfig
from wslab.selector import CompressionSelector
from wslab.sim import simulate

ADAPTIVE = TuningConfig().updated({"compression.policy": "adaptive"})
ALWAYS = TuningConfig()


def _probes_at_most(n: int, selector: CompressionSelector) -> int:
    """Probes a stream can take in ``n`` skipped frames: gaps start at ``probe_every``
    and double up to ``max_probe_every`` (the documented rule, counted independently)."""
    probes, gap, used = 0, selector.probe_every, 0
    while used + gap <= n:
        used += gap
        probes += 1
        gap = min(gap * 2, selector.max_probe_every)
    return probes


def test_adaptive_skips_random_blobs_after_measuring_them() -> None:
    trace = blob_trace()
    result = simulate(trace, ADAPTIVE)
    frames = result.frames
    rules = CompressionSelector("adaptive")
    for kind in BLOB_TYPES:
        mine = frames[frames["key"] == kind]
        n = len(mine)
        squeezed = int(mine["compressed"].sum())
        assert n > 80
        # The warm-up frames are compressed to measure the stream, then only probes.
        assert squeezed >= rules.warmup
        assert squeezed <= rules.warmup + _probes_at_most(n, rules)
        assert not mine["compressed"].iloc[-20:].all()
    json_frames = frames[~frames["key"].isin(BLOB_TYPES)]
    assert json_frames["compressed"].all()
    s = result.summary
    assert s["frames_plain"] == int((~frames["compressed"]).sum())
    assert set(s["plain_by_key"]) == set(BLOB_TYPES)
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)


def test_adaptive_differs_from_always_in_bytes_and_cpu() -> None:
    trace = blob_trace()
    adaptive, always = simulate(trace, ADAPTIVE), simulate(trace, ALWAYS)
    a, w = adaptive.frames, always.frames
    assert len(a) == len(w)
    # Not the same run: always compresses every blob, adaptive sends most of them plain.
    assert w["compressed"].all() and not a["compressed"].all()
    blobs_a = a[a["key"].isin(BLOB_TYPES)]
    blobs_w = w[w["key"].isin(BLOB_TYPES)]
    # Deflate makes random bytes longer; sent plain they are exactly their size.
    assert (blobs_w["wire_payload_bytes"] > blobs_w["payload_bytes"]).all()
    plain = blobs_a[~blobs_a["compressed"]]
    assert (plain["wire_payload_bytes"] == plain["payload_bytes"]).all()
    assert adaptive.summary["compressed_bytes"] < always.summary["compressed_bytes"]
    # The codec did less work: the blobs' bytes mostly never reached it.
    fed_adaptive = int(a.loc[a["compressed"], "payload_bytes"].sum())
    fed_always = int(w["payload_bytes"].sum())
    assert fed_adaptive < 0.7 * fed_always
    assert adaptive.summary["cpu_us_per_msg"] < always.summary["cpu_us_per_msg"]


def test_threshold_and_never_are_exact_per_frame() -> None:
    trace = blob_trace(2.0)
    cut = 500
    thr = simulate(trace, TuningConfig().updated({"compression.policy": "threshold",
                                                  "compression.threshold_bytes": cut}))
    f = thr.frames
    assert (f["compressed"] == (f["payload_bytes"] >= cut)).all()
    never = simulate(trace, TuningConfig().updated({"compression.policy": "never"}))
    assert not never.frames["compressed"].any()
    assert never.summary["compressed_bytes"] == never.summary["payload_bytes"]
    assert never.summary["frames_plain"] == len(never.frames)


@pytest.mark.parametrize("strategy", ["hybrid", "priority"])
def test_batched_frames_are_decided_by_their_key(strategy: str) -> None:
    trace = blob_trace(3.0)
    cfg = ADAPTIVE.updated({"batching.strategy": strategy, "batching.interval_ms": 20})
    first, again = simulate(trace, cfg).frames, simulate(trace, cfg).frames
    assert len(first) < len(trace)
    assert "(batch)" in set(first["key"])
    # Decisions depend only on the frames and their order: a rerun takes the same ones.
    assert first["compressed"].tolist() == again["compressed"].tolist()
    assert first["wire_payload_bytes"].tolist() == again["wire_payload_bytes"].tolist()
