"""The scaling panel: sliders move the estimate, live runs and storms fill the plots, cancel.

The estimate runs nothing, so its tests are instant. The live tests start real worker and
client processes on loopback through ``wslab.harness.scale`` with a few hundred
connections at most, and check that nothing is left running afterwards.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
import psutil
import pytest

from wslab.codecs.deflate import deflate_memory_bytes
from wslab.config import TuningConfig
from wslab.harness.cluster import ephemeral_ports
from wslab.lab import ScalingPanel
from wslab.lab.scaling_estimate import BASE_KIB
from wslab.lab.scaling_figures import ramp_points

MEMORY, LIMITS = "memory", "limits"


def _children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.fixture
def nothing_left_running() -> object:
    before = _children()
    yield
    left = _children() - before
    assert not left, f"processes left running: {left}"


def data(panel: ScalingPanel, fig: str, axis: str = "y", trace: int = 0) -> np.ndarray:
    values = getattr(panel.figures[fig].data[trace], axis)
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_connections_slider_moves_the_limits_figure() -> None:
    panel = ScalingPanel(connections=1_000)
    before = data(panel, LIMITS, "x")
    names = list(panel.figures[LIMITS].data[0].y)
    assert "ports per source address" in names
    panel.set(connections=20_000)
    after = data(panel, LIMITS, "x")
    assert not np.array_equal(before, after)
    ports = names.index("ports per source address")
    assert after[ports] == pytest.approx(100 * 20_000 / ephemeral_ports(), rel=1e-3)
    assert panel.params["connections"] == 20_000
    panel.set(connections=100_000)  # one worker cannot hold that many files
    assert panel.result is not None and panel.result.problems
    assert "cannot run" in panel.warnings.value and "RLIMIT_NOFILE" in panel.warnings.value
    assert panel.result.source_addresses >= 4  # ~28k ports per 127.0.0.x address


def test_config_sliders_set_the_config_fields() -> None:
    panel = ScalingPanel()
    panel.set(workers=3, heartbeat_interval_s=90.0, max_connections=500,
              pending_timeout_s=2.0, broker="redis")
    sc = panel.config.scaling
    assert (sc.workers, sc.heartbeat_interval_s, sc.max_connections, sc.pending_timeout_s,
            sc.broker) == (3, 90.0, 500, 2.0, "redis")
    assert "proxy_read_timeout" in panel.warnings.value  # 90 s pings behind nginx's 60 s
    panel.set(heartbeat_interval_s=0.0)
    assert panel.config.scaling.heartbeat_interval_s is None
    assert panel.result is not None and panel.result.pings_per_s == 0
    panel.set(broker="memory")
    assert "memory broker cannot fan out" in panel.warnings.value


def test_compression_controls_move_the_memory_estimate() -> None:
    panel = ScalingPanel()
    before = data(panel, MEMORY)
    # off, websockets default (12/5: 32 KiB compressor + 4 KiB decompressor), configured
    assert before[0] == BASE_KIB and before[1] == pytest.approx(BASE_KIB + 36)
    panel.set(compression="configured", window_bits=15, mem_level=8)
    after = data(panel, MEMORY)
    assert not np.array_equal(before, after)
    assert after[2] == pytest.approx(BASE_KIB + (deflate_memory_bytes(15, 8) / 1024))
    c = panel.config.compression
    assert (c.algorithm, c.server_max_window_bits, c.client_max_window_bits, c.mem_level) == (
        "permessage-deflate", 15, 15, 8)
    panel.set(compression="off")
    assert panel.config.compression.algorithm == "none"
    assert panel.result is not None and panel.result.per_connection_kib == BASE_KIB
    outline = panel.figures[MEMORY].data[0].marker.line.width
    assert list(outline) == [3, 0, 0]  # the selected variant is outlined


def test_ramp_points_are_cumulative_and_end_at_time_to_n() -> None:
    xs, ys = ramp_points({"ramp_per_second": [120, 200, 30], "time_to_n_s": 2.4})
    assert xs == [0.0, 1.0, 2.0, 2.4] and ys == [0, 120, 320, 350]
    assert ramp_points({"ramp_per_second": [200], "time_to_n_s": 0.3}) == ([0.0, 0.3],
                                                                           [0, 200])


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("nothing_left_running")
def test_live_run_reports_progress_and_fills_the_plots() -> None:
    panel = ScalingPanel(TuningConfig(), connections=200, broadcasts=3, directs=2, idle_s=0.3)
    panel.set(compression="websockets default", workers=1, broker="memory")
    seen: list[int] = []

    async def main() -> None:
        task = panel.start_live()
        panel.tasks.progress.listeners.append(lambda pr: seen.append(pr.done))
        assert not panel.cancel_button.disabled
        ticks = 0
        while not task.done():  # the kernel's loop keeps turning during the run
            ticks += 1
            await asyncio.sleep(0.05)
        assert ticks > 20
        await task

    asyncio.run(main())
    assert panel.tasks.state == "done", panel.status.value
    assert seen == sorted(seen) and len(set(seen)) >= 3
    assert panel.live is not None and panel.live.summary["opened"] == 200
    xs, ys = data(panel, "ramp", "x"), data(panel, "ramp")
    assert ys[-1] == 200 and xs[-1] > 0
    fanout = data(panel, "fanout")
    assert list(panel.figures["fanout"].data[0].x) == ["p50", "p90", "p95", "p99", "max"]
    assert np.all(fanout > 0) and np.all(np.diff(fanout) >= 0)
    measured = data(panel, MEMORY, trace=2)
    assert np.isnan(measured[0]) and measured[1] > 0 and np.isnan(measured[2])
    assert panel.measured["websockets default"] == measured[1]
    assert "0 / 0 / 0" in panel.live_stats.value


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("nothing_left_running")
def test_cancel_stops_the_run_and_everything_it_started() -> None:
    panel = ScalingPanel(connections=200, idle_s=5.0)

    async def main() -> None:
        task = panel.start_live()
        while panel.tasks.progress.done < 2:  # workers up, clients connecting
            await asyncio.sleep(0.02)
        panel.cancel_button.click()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert panel.tasks.state == "cancelled" and panel.status.value == "cancelled"
    assert panel.live is None and panel.cancel_button.disabled
    assert len(panel.figures["ramp"].data[0].x) == 0


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("nothing_left_running")
def test_storm_shows_rejections() -> None:
    panel = ScalingPanel()
    panel.set(max_connections=20, pending_timeout_s=0.5, storm_factor=3.0)
    assert panel.storm_clients() == 60

    async def main() -> None:
        await panel.start_storm()

    asyncio.run(main())
    assert panel.tasks.state == "done", panel.status.value
    storm = panel.storm
    assert storm is not None and storm["held"] == 20 and storm["worker_alive"]
    bars = dict(zip(panel.figures["storm"].data[0].x, panel.figures["storm"].data[0].y,
                    strict=True))
    assert bars["clients"] == 60 and bars["held"] == 20
    assert bars["refused with 1013"] == 40 == storm["refused_1013"]


def test_a_run_the_machine_cannot_do_fails_in_the_status_line() -> None:
    panel = ScalingPanel()
    panel.set(connections=500, max_connections=100)

    async def main() -> None:
        panel.buttons["Live run"].click()
        assert panel.tasks.task is not None
        await panel.tasks.task

    asyncio.run(main())
    assert panel.tasks.state == "failed"
    assert "wslab-error" in panel.status.value and "max_connections" in panel.status.value
