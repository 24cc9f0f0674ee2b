"""Panel unit tests: a moved widget changes the config and the figures' data."""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np
import pytest

from wslab.lab import BatchingPanel, CompressionPanel, ContentPanel
from wslab.lab.content import ALL_TYPES
from wslab.lab.data import load_trace, speed_up

N = 1500


@pytest.fixture(scope="module")
def chat():  # type: ignore[no-untyped-def]
    return load_trace("chat", messages=N)


def xs(fig, i: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(fig.data[i].x, dtype=float)


def ys(fig, i: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(fig.data[i].y, dtype=float)


def test_batching_interval_moves_config_and_latency_curve(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    assert p.config.batching.strategy == "time"
    normal = [t.name for t in p.figures["latency"].data].index("normal")
    before = xs(p.figures["latency"], normal)
    bars_before = ys(p.figures["bytes"], 1)
    p.set(interval_ms=120)
    assert p.config.batching.interval_ms == 120
    after = xs(p.figures["latency"], normal)
    assert not np.allclose(before, after)
    # A longer hold puts more messages in each frame: fewer header bytes per message.
    assert ys(p.figures["bytes"], 1)[1] < bars_before[1]
    # The unbatched reference does not move with the interval.
    assert ys(p.figures["bytes"], 1)[0] == pytest.approx(bars_before[0])
    assert "frames per second" in p.stats.value


def test_batching_rate_link_and_priority_controls(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    base = xs(p.figures["latency"], 3).copy()  # the unbatched curve
    p.set(profile="slow-3g")
    assert p.config.link.profile == "slow-3g"
    assert np.median(xs(p.figures["latency"], 3)) > np.median(base) + 100
    p.set(rate=4.0)
    assert p.params["rate"] == 4.0
    p.set(strategy="priority", background=1500)
    assert p.config.batching.priority_interval_ms.background == 1500
    bg = xs(p.figures["latency"], 2)
    assert np.nanmax(bg) > 1000  # background messages wait up to their deadline


def test_speed_up_divides_times(chat) -> None:  # type: ignore[no-untyped-def]
    fast = speed_up(chat, 4.0)
    assert fast.duration == pytest.approx(chat.duration / 4)
    assert [m.payload for m in fast][:5] == [m.payload for m in chat][:5]
    assert speed_up(chat, 4.0) is fast  # remembered


def test_invalid_value_is_shown_not_raised(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    box = p.bind(W.IntText(), "batching.max_messages", key="typed_max")
    box.value = 0  # the config allows 1..100000
    assert p.config.batching.max_messages == 64
    assert "wslab-error" in p.status.value
    box.value = 8
    assert p.config.batching.max_messages == 8
    assert "wslab-error" not in p.status.value


def test_compression_controls_map_to_fields(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat)
    c = p.config.compression
    assert (c.server_max_window_bits, c.policy) == (12, "always")
    p.set(window_bits=9)
    assert p.config.compression.server_max_window_bits == 9
    assert p.config.compression.client_max_window_bits == 9
    p.set(context_takeover=False)
    assert p.config.compression.server_no_context_takeover
    assert p.config.compression.client_no_context_takeover
    p.set(threshold_bytes=256)
    assert p.config.compression.policy == "threshold"
    p.set(adaptive=True)
    assert p.config.compression.policy == "adaptive"
    p.set(adaptive=False, threshold_bytes=0)
    assert p.config.compression.policy == "always"


def test_compression_figures_follow_the_algorithm(chat) -> None:  # type: ignore[no-untyped-def]
    p = CompressionPanel(chat)
    payload_before = ys(p.figures["bytes"], 0)[1]
    p.set(algorithm="none")
    assert ys(p.figures["bytes"], 0)[1] > payload_before
    assert ys(p.figures["bytes"], 0)[1] == pytest.approx(ys(p.figures["bytes"], 0)[0])
    assert "1.000" in p.stats.value
    p.set(algorithm="zstd-stream")
    assert ys(p.figures["bytes"], 0)[1] < ys(p.figures["bytes"], 0)[0]


def test_heatmap_fills_every_cell(chat, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WSLAB_FAST", "1")
    p = CompressionPanel(chat[:600])
    assert (p.wbits_axis, p.mem_axis) == ((9, 12, 15), (1, 5, 9))
    z = p.run_heatmap()
    flat = [v for row in z for v in row]
    assert len(flat) == 9 and all(v is not None and 0 < v < 1.2 for v in flat)
    # A 32 KiB window sees more of the past than a 512-byte one.
    assert z[-1][-1] < z[0][0]


def test_content_type_picker_and_settings(chat) -> None:  # type: ignore[no-untyped-def]
    p = ContentPanel(chat)
    assert p.params["type"] == ALL_TYPES
    kinds = list(p.controls["type"].options)[1:]
    target = "chat.message" if "chat.message" in kinds else kinds[0]
    runs = len(p.debouncer.timings)
    p.set(type=target)
    assert f"<td style='padding:2px 8px'>{target}</td>" in p.table.value
    other = next(k for k in kinds if k != target)
    assert f"<td style='padding:2px 8px'>{other}</td>" not in p.table.value
    assert len(p.debouncer.timings) == runs + 1
    ratios = ys(p.figures["ratios"], 0).copy()
    p.set(window_bits=9)
    assert not np.allclose(ratios, ys(p.figures["ratios"], 0), equal_nan=True)
    assert all(math.isfinite(v) for v in xs(p.figures["features"], 0))


def test_panel_displays_as_a_widget(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    assert isinstance(p.widget, W.VBox)
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "first" in p.widget.children[0].value or "messages" in p.widget.children[0].value


def test_compression_panel_sets_adaptive_beside_always_and_says_why() -> None:
    from mixed_blobs import BLOB_TYPES, blob_trace

    p = CompressionPanel(blob_trace(seconds=2.0))
    assert p.policy_stats.value == ""  # policy always: nothing to set beside it
    assert "latency p95" in p.stats.value
    p.set(adaptive=True)
    result = p.result
    assert result is not None and result.run is not None and result.always is not None
    assert result.always.frames_plain == 0
    assert set(result.run.plain_by_key) == set(BLOB_TYPES)
    assert result.run.frames_plain == sum(result.run.plain_by_key.values()) > 0
    assert result.run.cpu_us < result.always.cpu_us
    table = p.policy_stats.value
    assert "policy adaptive" in table and "policy always" in table
    assert all(kind in table for kind in BLOB_TYPES)
    assert f"{result.run.frames_plain:,}" in table


def test_batching_panel_lists_p95(chat) -> None:  # type: ignore[no-untyped-def]
    p = BatchingPanel(chat)
    assert "latency p95" in p.stats.value
    assert "latency p50" in p.stats.value and "latency p99" in p.stats.value
