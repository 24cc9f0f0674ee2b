"""Batchers: every strategy against a plain reference model, and properties for any input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_batching import CLASSES, STRATEGIES, drive, max_hold, reference

from wslab.batching import Batcher, Pending
from wslab.config import BatchingConfig

item_lists = st.lists(
    st.tuples(st.floats(0, 0.05), st.sampled_from(CLASSES), st.integers(0, 400)),
    max_size=60,
).map(lambda xs: [(round(sum(x[0] for x in xs[: i + 1]), 6), p, n)
                  for i, (_, p, n) in enumerate(xs)])
configs = st.builds(
    lambda s, iv, mb, mm, mh, pc, pn, pb, bq: BatchingConfig.model_validate({
        "strategy": s, "interval_ms": iv, "max_bytes": mb, "max_messages": mm,
        "max_hold_ms": mh,
        "priority_interval_ms": {"critical": pc, "normal": pn, "background": pb},
        "background_queue_limit": bq}),
    st.sampled_from(STRATEGIES), st.sampled_from([0, 1, 5, 16, 50]),
    st.sampled_from([1, 100, 500, 2000, 10**6]), st.one_of(st.integers(1, 10), st.just(10**4)),
    st.sampled_from([0, 3, 20, 100]),
    st.sampled_from([0, 2]), st.sampled_from([5, 16]), st.sampled_from([16, 100]),
    st.sampled_from([1, 3, 10_000]),
)


@settings(max_examples=400, deadline=None)
@given(configs, item_lists)
def test_batcher_matches_the_reference_model(cfg: BatchingConfig,
                                             items: list[tuple[float, str, int]]) -> None:
    got = [([m.index for m in b.messages], b.flushed_at) for b in drive(Batcher(cfg), items)]
    want = reference(cfg, items)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == pytest.approx([w[1] for w in want])


@settings(max_examples=300, deadline=None)
@given(configs, item_lists)
def test_nothing_lost_duplicated_or_reordered(cfg: BatchingConfig,
                                              items: list[tuple[float, str, int]]) -> None:
    batcher = Batcher(cfg)
    batches = drive(batcher, items)
    sent = [m for b in batches for m in b.messages]
    indices = sorted([m.index for m in sent] + [m.index for m in batcher.dropped])
    assert indices == list(range(len(items)))
    assert all(m.priority == "background" for m in batcher.dropped)
    for prio in CLASSES:
        seqs = [m.seq for m in sent if m.priority == prio]
        assert seqs == sorted(seqs)
    for b in batches:
        assert [m.index for m in b.messages] == sorted(m.index for m in b.messages)
        assert all(b.flushed_at >= m.t for m in b.messages)
        if cfg.strategy in ("size", "hybrid", "priority") and len(b.messages) > 1:
            assert sum(len(m.payload) for m in b.messages) <= cfg.max_bytes
        if cfg.strategy in ("count", "hybrid", "priority"):
            assert len(b.messages) <= cfg.max_messages


@settings(max_examples=400, deadline=None)
@given(configs, item_lists)
def test_no_message_waits_longer_than_its_strategys_maximum_hold(
        cfg: BatchingConfig, items: list[tuple[float, str, int]]) -> None:
    """Polled at every deadline (as the simulator and the live timer do), every message
    leaves within the maximum hold the strategy table documents, whatever the limits; the
    batcher never waits for the end of the stream."""
    batcher = Batcher(cfg)
    batches = drive(batcher, items)
    assert all(b.reason != "end" for b in batches)
    for b in batches:
        for m in b.messages:
            assert b.flushed_at - m.t <= max_hold(cfg, m.priority) + 1e-9, (
                f"{cfg.strategy}: a {m.priority} message waited {b.flushed_at - m.t:.6f} s")


def test_a_quiet_size_or_count_batcher_sends_after_max_hold() -> None:
    for strategy in ("size", "count"):
        cfg = BatchingConfig(strategy=strategy, max_hold_ms=40)
        b = Batcher(cfg)
        assert b.push(Pending(0, 0, 1.0, "normal", "x", b"a", True), 1.0) == []
        assert b.push(Pending(1, 1, 1.01, "normal", "x", b"a", True), 1.01) == []
        assert b.next_deadline() == pytest.approx(1.04)
        assert b.poll(1.039) == []
        (out,) = b.poll(1.04)
        assert [m.index for m in out.messages] == [0, 1]
        assert (out.flushed_at, out.reason) == (1.04, "interval")
        assert b.next_deadline() is None


def test_critical_goes_at_once_and_carries_what_is_due() -> None:
    cfg = BatchingConfig(strategy="priority", max_messages=100, max_bytes=10**6)
    b = Batcher(cfg)
    assert b.push(Pending(0, 0, 0.0, "normal", "x", b"n", True), 0.0) == []
    assert b.push(Pending(1, 0, 0.001, "background", "x", b"b", True), 0.001) == []
    # Normal is due at 16 ms; a critical message at 20 ms takes it along, not background.
    out = b.push(Pending(2, 0, 0.020, "critical", "x", b"c", True), 0.020)
    assert [[m.index for m in batch.messages] for batch in out] == [[0, 2]]
    assert b.next_deadline() == pytest.approx(0.251)


def test_background_count_survives_a_size_flush() -> None:
    # A background message that triggers a size flush must still count as waiting.
    b = Batcher(BatchingConfig(strategy="size", max_bytes=500, background_queue_limit=1))
    out = b.push(Pending(0, 0, 0.0, "critical", "x", b"a" * 101, True), 0.0)
    out += b.push(Pending(1, 0, 0.0, "background", "x", b"a" * 400, True), 0.0)
    out += b.push(Pending(2, 1, 0.0, "background", "x", b"", True), 0.0)
    out += b.flush(0.0)
    assert [[m.index for m in x.messages] for x in out] == [[0], [1]]
    assert [m.index for m in b.dropped] == [2]


def test_background_overflow_is_counted_not_silent() -> None:
    cfg = BatchingConfig(strategy="priority", background_queue_limit=2)
    b = Batcher(cfg)
    for i in range(5):
        b.push(Pending(i, i, 0.0, "background", "x", b"b", True), 0.0)
    assert b.waiting == 2
    assert [m.index for m in b.dropped] == [2, 3, 4]


def test_size_strategy_flushes_before_overflowing() -> None:
    b = Batcher(BatchingConfig(strategy="size", max_bytes=100, max_hold_ms=500))
    assert b.push(Pending(0, 0, 0.0, "normal", "x", b"a" * 60, True), 0.0) == []
    out = b.push(Pending(1, 1, 0.1, "normal", "x", b"a" * 60, True), 0.1)
    assert [[m.index for m in x.messages] for x in out] == [[0]]
    assert out[0].reason == "bytes"
    assert b.next_deadline() == pytest.approx(0.1 + 0.5)  # max_hold_ms from message 1
    assert [m.index for m in b.flush(0.12)[0].messages] == [1]


@settings(max_examples=400, deadline=None)
@given(configs, item_lists, st.lists(st.integers(1, 6), min_size=1, max_size=30))
def test_push_many_gives_the_batches_of_one_push_per_message(
        cfg: BatchingConfig, items: list[tuple[float, str, int]], groups: list[int]) -> None:
    # Messages arriving together (the parts of one received batch, echoed back) go in one
    # push_many: the batches, their reasons and times, and what was dropped, are those of
    # pushing each in turn at that time.
    timed = []
    for (_t, prio, size), k in zip(items, groups * len(items), strict=False):
        timed.append((k, prio, size))
    now, stamped = 0.0, []
    for k, prio, size in timed:  # group sizes give runs of equal arrival times
        stamped.append((now, prio, size))
        if k % 2:
            now = round(now + 0.001 * k, 6)

    def run(many: bool) -> tuple[list[tuple[list[int], float, str]], list[int]]:
        batcher = Batcher(cfg)
        out: list[Any] = []
        seqs = dict.fromkeys(CLASSES, 0)
        i = 0
        while i < len(stamped):
            t = stamped[i][0]
            while (d := batcher.next_deadline()) is not None and d <= t:
                out += batcher.poll(d)
            run_of = []
            while i < len(stamped) and stamped[i][0] == t:
                _t, prio, size = stamped[i]
                run_of.append(Pending(i, seqs[prio], t, prio, "x", b"a" * size, True))
                seqs[prio] += 1
                i += 1
            if many:
                out += batcher.push_many(run_of, t)
            else:
                for m in run_of:
                    out += batcher.push(m, t)
        out += batcher.flush(now)
        return ([([m.index for m in b.messages], b.flushed_at, b.reason) for b in out],
                [m.index for m in batcher.dropped])

    assert run(True) == run(False)
