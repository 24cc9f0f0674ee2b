"""A sweep row from a summary record: the selector's columns and zstd dictionary memory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wslab.config import TuningConfig
from wslab.tune.sweep import memory_estimate_kib, point_row


def summary(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "messages": 100, "frames": 80, "payload_bytes": 9000, "compressed_bytes": 4000,
        "ws_bytes": 4200, "tcp_bytes": 6000, "tcp_segments": 90, "compression_ratio": 0.44,
        "cpu_us_per_msg": 3.0, "lost": 0, "duplicated": 0, "reordered": 0, "dropped": 0,
        "latency_ms": {"p50": 1.0, "p90": 2.0, "p95": 2.5, "p99": 4.0, "max": 9.0},
        "by_dir": {"s2c": {"messages": 70}, "c2s": {"messages": 30}},
    }
    base.update(extra)
    return base


def test_row_carries_what_the_selector_did() -> None:
    config = TuningConfig().updated({"compression.policy": "adaptive"})
    row = point_row(config, summary(frames_compressed=60, frames_plain=20,
                                    plain_by_key={"media.chunk": 15, "upload.part": 5}))
    assert (row["frames_compressed"], row["frames_plain"]) == (60, 20)
    assert json.loads(row["plain_keys"]) == {"media.chunk": 15, "upload.part": 5}
    assert row["c2s_messages"] == 30
    assert row["latency_p95_ms"] == 2.5
    # a summary without those keys (an older bench record) says nothing rather than 0
    bare = point_row(config, summary())
    assert bare["frames_plain"] is None and bare["plain_keys"] is None


def test_dictionary_bytes_count_in_memory_per_connection_for_zstd_dict_only() -> None:
    dict_cfg = TuningConfig().updated({"compression.algorithm": "zstd-dict"})
    stream_cfg = TuningConfig().updated({"compression.algorithm": "zstd-stream"})
    with_dicts = point_row(dict_cfg, summary(dictionary_bytes=32 * 1024))
    without = point_row(dict_cfg, summary())
    assert with_dicts["mem_kib_per_conn"] - without["mem_kib_per_conn"] == pytest.approx(32.0)
    assert memory_estimate_kib(stream_cfg, 32 * 1024) == memory_estimate_kib(stream_cfg)


def test_memory_estimate_counts_no_context_for_a_side_without_takeover() -> None:
    from wslab.codecs.deflate import DeflateEncoder, deflate_memory_bytes

    base = TuningConfig()
    c = base.compression
    full = memory_estimate_kib(base)
    assert full * 1024 == deflate_memory_bytes(c.server_max_window_bits, c.mem_level,
                                               decoder=False) + (1 << c.client_max_window_bits)
    no_server = memory_estimate_kib(base.updated({"compression.server_no_context_takeover":
                                                  True}))
    assert no_server * 1024 == 1 << c.client_max_window_bits
    both = base.updated({"compression.server_no_context_takeover": True,
                         "compression.client_no_context_takeover": True})
    assert memory_estimate_kib(both) == 0
    # And it is true of the encoder: without takeover it keeps no zlib object.
    encoder = DeflateEncoder(no_context_takeover=True)
    encoder.encode(b"hello hello hello")
    assert encoder._compressor is None
