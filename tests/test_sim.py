"""The simulator: byte-exact against an independent computation, integrity for any input."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_batching import reference
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.model import Message, Trace

PRIOS = ("critical", "normal", "background")


def make_trace(n: int = 400, seed: int = 1, binary_every: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(0.003, n))
    msgs = []
    for i in range(n):
        prio = PRIOS[int(rng.integers(0, 3))]
        if binary_every and i % binary_every == 0:
            payload, is_text = rng.integers(0, 255, int(rng.integers(1, 300))).astype(
                np.uint8).tobytes(), False
        else:
            doc = {"type": "tick", "id": i, "px": round(float(rng.normal(100, 5)), 2),
                   "note": "x" * int(rng.integers(0, 200))}
            payload, is_text = json.dumps(doc).encode(), True
        msgs.append(Message(float(t[i]), "s2c" if i % 4 else "c2s", f"k{i % 3}", prio,
                            payload, is_text))
    return Trace(msgs)


def independent_ws_bytes(trace: Trace, config: TuningConfig, envelope: str | None) -> int:
    """RFC 6455 frames built by the websockets library itself, around our grouping rules.

    Grouping comes from the naive reference batcher (tests/reference_batching.py); the
    envelope layout is written out here from its documented definition; compression, when
    on, is websockets' own permessage-deflate encoder; frame sizes are the length of the
    bytes websockets serialises.
    """
    total = 0
    c = config.compression
    for direction in ("s2c", "c2s"):
        msgs = [m for m in trace if m.dir == direction]
        items = [(m.t, m.priority, len(m.payload)) for m in msgs]
        groups = reference(config.batching, items)
        side_bits = c.server_max_window_bits if direction == "s2c" else c.client_max_window_bits
        no_ctx = (c.server_no_context_takeover if direction == "s2c"
                  else c.client_no_context_takeover)
        ext = PerMessageDeflate(False, no_ctx, 15, side_bits,
                                {"memLevel": c.mem_level, "level": c.level})
        for indices, _ in groups:
            group = [msgs[i] for i in indices]
            if envelope is None:
                (m,) = group
                data, opcode = m.payload, Opcode.TEXT if m.is_text else Opcode.BINARY
            elif envelope == "json-array":
                data, opcode = b"[" + b",".join(m.payload for m in group) + b"]", Opcode.TEXT
            elif envelope == "ndjson":
                data, opcode = b"\n".join(m.payload for m in group), Opcode.TEXT
            else:
                data = b"".join(bytes([m.is_text]) + _leb(len(m.payload)) + m.payload
                                for m in group)
                opcode = Opcode.BINARY
            exts = [ext] if c.algorithm == "permessage-deflate" else []
            total += len(Frame(opcode, data).serialize(mask=direction == "c2s",
                                                       extensions=exts))
    return total


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


CASES = [
    ("none", "auto"), ("time", "json-array"), ("size", "ndjson"), ("count", "length-prefixed"),
    ("hybrid", "json-array"), ("priority", "length-prefixed"), ("hybrid", "ndjson"),
]


@pytest.mark.parametrize(("strategy", "envelope"), CASES)
def test_ws_bytes_equal_an_independent_computation_without_compression(
    strategy: str, envelope: str
) -> None:
    trace = make_trace()
    cfg = TuningConfig().updated({
        "batching.strategy": strategy, "batching.envelope": envelope,
        "batching.max_bytes": 2000, "batching.max_messages": 7,
        "compression.algorithm": "none"})
    result = simulate(trace, cfg)
    used = None if strategy == "none" else envelope
    assert result.summary["ws_bytes"] == independent_ws_bytes(trace, cfg, used)
    assert result.summary["compressed_bytes"] == result.frames["payload_bytes"].sum()


def test_binary_messages_make_auto_choose_length_prefixed() -> None:
    trace = make_trace(binary_every=5)
    cfg = TuningConfig().updated({"batching.strategy": "hybrid", "compression.algorithm": "none"})
    result = simulate(trace, cfg)
    assert result.summary["envelope"] == "length-prefixed"
    assert result.summary["ws_bytes"] == independent_ws_bytes(trace, cfg, "length-prefixed")


def test_latency_parts_add_up_and_batching_costs_wait() -> None:
    trace = make_trace(1000)
    base = TuningConfig().updated({"compression.algorithm": "none"})
    plain = simulate(trace, base, link="wifi")
    batched = simulate(trace, base.updated({"batching.strategy": "time",
                                            "batching.interval_ms": 20}), link="wifi")
    m = batched.messages
    parts = m[["batch_wait_ms", "compression_ms", "queue_ms", "serialisation_ms",
               "propagation_ms", "decompression_ms"]].sum(axis=1)
    assert np.allclose(parts, m["latency_ms"])
    assert batched.summary["frames"] < plain.summary["frames"] / 3
    assert m["batch_wait_ms"].max() <= 20 + 1e-6
    assert batched.summary["latency_ms"]["p50"] > plain.summary["latency_ms"]["p50"]


def test_slow_link_queues_a_burst() -> None:
    msgs = [Message(0.0, "s2c", "blob", "normal", b"x" * 5000, False) for _ in range(10)]
    cfg = TuningConfig().updated({"compression.algorithm": "none"})
    r = simulate(Trace(msgs), cfg, link="slow-3g")
    lat = r.messages["latency_ms"].to_numpy()
    assert np.all(np.diff(lat) > 0)  # each waits behind the one before it
    per = r.frames["tcp_bytes"].iloc[0] * 8 / 400_000 * 1e3  # ms per frame at 400 kbit/s
    assert lat[-1] - lat[0] == pytest.approx(9 * per, rel=1e-6)


def test_ndjson_with_newlines_is_a_clear_error() -> None:
    from wslab.errors import WslabError

    msgs = [Message(0.0, "s2c", "a", "normal", b"line\nbreak", True)]
    cfg = TuningConfig().updated({"batching.strategy": "time", "batching.envelope": "ndjson",
                                  "compression.algorithm": "none"})
    with pytest.raises(WslabError, match="newline"):
        simulate(Trace(msgs), cfg)


traces = st.lists(
    st.tuples(st.floats(0, 0.02), st.sampled_from(["s2c", "c2s"]), st.sampled_from(PRIOS),
              st.one_of(st.binary(max_size=200).map(lambda b: (b, False)),
                        st.text(max_size=80).map(lambda s: (s.encode(), True)))),
    min_size=1, max_size=60,
)


@settings(max_examples=120, deadline=None)
@given(traces, st.sampled_from(["none", "time", "size", "count", "hybrid", "priority"]),
       st.sampled_from(["none", "permessage-deflate", "zstd-stream"]),
       st.sampled_from(["loopback", "4g"]), st.integers(1, 3))
def test_any_trace_any_batcher_delivers_every_message_exactly(
    items: list[tuple[float, str, str, tuple[bytes, bool]]], strategy: str, algorithm: str,
    link: str, queue_limit: int,
) -> None:
    t = 0.0
    msgs = []
    for gap, direction, prio, (payload, is_text) in items:
        t += gap
        msgs.append(Message(t, direction, "x", prio, payload, is_text))  # type: ignore[arg-type]
    cfg = TuningConfig().updated({
        "batching.strategy": strategy, "batching.max_bytes": 300, "batching.max_messages": 5,
        "batching.background_queue_limit": 10_000 if queue_limit > 1 else 1,
        "compression.algorithm": algorithm})
    r = simulate(Trace(msgs), cfg, link=link)
    s = r.summary
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    delivered = r.messages["delivered"]
    assert int(delivered.sum()) + s["dropped"] == len(msgs)
    assert s["messages"] == len(msgs)


def test_zlib_level_and_each_sides_window_reach_its_codec() -> None:
    """Each setting moves only the direction it belongs to: the server's window the
    server-to-client bytes, the client's window the client-to-server bytes, the level both
    (a window applied to the wrong side, or not at all, fails here)."""
    trace = make_trace(300)
    base = TuningConfig().updated({"compression.level": 6,
                                   "compression.server_max_window_bits": 15,
                                   "compression.client_max_window_bits": 15})

    def by_dir(changes: dict[str, int]) -> tuple[int, int]:
        d = simulate(trace, base.updated(changes)).summary["by_dir"]
        return d["s2c"]["compressed_bytes"], d["c2s"]["compressed_bytes"]

    s2c, c2s = by_dir({})
    small_server = by_dir({"compression.server_max_window_bits": 9})
    small_client = by_dir({"compression.client_max_window_bits": 9})
    assert small_server[0] > s2c and small_server[1] == c2s
    assert small_client[1] > c2s and small_client[0] == s2c
    fast = by_dir({"compression.level": 1})
    assert fast[0] > s2c and fast[1] > c2s
    # and the server's window is the one websockets' own encoder would use on that side
    msgs = [m for m in trace if m.dir == "s2c"]
    for bits, got in ((15, s2c), (9, small_server[0])):
        enc = zlib.compressobj(6, zlib.DEFLATED, -bits, base.compression.mem_level)
        want = sum(len(enc.compress(m.payload) + enc.flush(zlib.Z_SYNC_FLUSH)) - 4
                   for m in msgs)
        assert got == want


COMPRESSION = [
    {"server_max_window_bits": 12, "client_max_window_bits": 12, "mem_level": 5, "level": 6},
    {"server_max_window_bits": 9, "client_max_window_bits": 15, "mem_level": 1, "level": 1},
    {"server_max_window_bits": 15, "client_max_window_bits": 10, "mem_level": 9, "level": 9,
     "server_no_context_takeover": True},
    {"server_max_window_bits": 11, "client_max_window_bits": 11, "mem_level": 8, "level": 6,
     "server_no_context_takeover": True, "client_no_context_takeover": True},
]


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize(("strategy", "envelope"), CASES)
def test_ws_bytes_equal_an_independent_computation_with_deflate(
    strategy: str, envelope: str, compression: dict[str, object]
) -> None:
    trace = make_trace(250, seed=7, binary_every=0 if envelope != "length-prefixed" else 9)
    changes = {f"compression.{k}": v for k, v in compression.items()}
    cfg = TuningConfig().updated({
        "batching.strategy": strategy, "batching.envelope": envelope,
        "batching.max_bytes": 2000, "batching.max_messages": 7,
        "compression.algorithm": "permessage-deflate", "compression.policy": "always",
        **changes})
    result = simulate(trace, cfg)
    used = None if strategy == "none" else result.summary["envelope"]
    assert bool(result.frames["compressed"].all())
    assert result.summary["ws_bytes"] == independent_ws_bytes(trace, cfg, used)
