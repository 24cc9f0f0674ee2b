"""``wslab scale`` end to end: real worker processes, a private redis-server, nginx.

Each run starts everything itself and must leave nothing running. Small numbers (a few
hundred connections) keep the file under a minute; the large figures are benchmarks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil
import pytest
from services import needs
from typer.testing import CliRunner

from wslab.cli.scale_cmd import nginx_conf
from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.cluster import free_port
from wslab.harness.scale import ScaleOptions, run_scale
from wslab.harness.scale_modes import run_storm

needs_redis = needs("redis-server", "redis-server")  # fails, never skips, if missing
needs_nginx = needs("nginx", "nginx")


def _our_children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.fixture(autouse=True)
def _nothing_left_running() -> object:
    before = _our_children()
    yield
    left = _our_children() - before
    assert not left, f"processes left running: {left}"


@needs_redis
def test_broadcast_across_two_reuseport_workers_via_redis() -> None:
    result = run_scale(TuningConfig(), ScaleOptions(connections=300, workers=2, broadcasts=4,
                                                    directs=15, idle_s=0.5))
    s = result.summary
    assert s["opened"] == 300 and s["failed"] == 0
    # SO_REUSEPORT spread the connections over both workers.
    assert len(s["held_per_worker"]) == 2 and min(s["held_per_worker"]) >= 60
    assert sum(s["held_per_worker"]) == 300
    # Every broadcast reached every client once, in order, through Redis.
    assert s["broadcast_receipts"] == 300 * 4
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    # Timely, with a margin that holds on a loaded 2-core machine: 5x the time the four
    # broadcasts take to go out (the precise figures are benchmarks/bench_scale.py).
    assert s["broadcast_latency_ms"]["max"] < 5 * 4 * s["broadcast_interval_s"] * 1000
    # Direct messages went to connections on the other worker, via the registry.
    assert s["direct_routes"] == {"remote": 15} and s["directs_received"] == 15
    assert s["registered"] == 300
    assert s["memory_per_connection_kib"] is not None and s["connections_per_s"] > 0
    # One p99 per broadcast; each worker timed its own hand-off of each of them.
    assert len(s["broadcast_p99_ms_each"]) == 4
    assert [len(w) for w in s["broadcast_fanout_ms"]] == [4, 4]
    assert s["gc_freeze"] and s["gc"]["gc_freezes"] >= 2  # each worker froze at least once
    assert s["gc_full_pause_max_ms"] is not None  # each worker timed its full collections


def test_without_gc_freeze_workers_report_no_freezes() -> None:
    s = run_scale(TuningConfig(), ScaleOptions(connections=100, broadcasts=1, directs=0,
                                               idle_s=0.2, gc_freeze=False)).summary
    assert s["gc"] == {} and not s["gc_freeze"]
    assert s["gc_full_pause_max_ms"] is not None  # timed with the freeze off too
    assert s["broadcast_receipts"] == 100 and s["lost"] == 0


@needs_redis
@needs_nginx
def test_nginx_front_proxies_sessions_to_both_workers() -> None:
    s = run_scale(TuningConfig(), ScaleOptions(connections=200, workers=2, balancer="nginx",
                                               broadcasts=2, directs=5, idle_s=0.2,
                                               nginx_conf=nginx_conf)).summary
    assert s["opened"] == 200 and sum(s["held_per_worker"]) == 200
    assert min(s["held_per_worker"]) > 0  # hash $remote_addr over 16 source addresses
    assert s["broadcast_receipts"] == 400 and s["lost"] == 0 and s["duplicated"] == 0
    assert s["directs_received"] == 5


@needs_redis
def test_a_worker_dying_is_reported_and_the_others_go_on() -> None:
    s = run_scale(TuningConfig(), ScaleOptions(connections=200, workers=2, broadcasts=2,
                                               directs=5, idle_s=0.2, kill_worker=1)).summary
    assert [d["worker"] for d in s["workers_died"]] == [1]
    lost = s["workers_died"][0]["connections_held"]
    assert lost > 0 and s["connections_lost"] == lost
    # The survivor's clients still got every broadcast.
    assert s["broadcast_receipts"] == (200 - lost) * 2 and s["lost"] == 0
    assert s["directs_received"] == s["directs_sent"]  # dead worker's entries purged


def test_storm_beyond_max_connections_gets_1013_and_no_crash() -> None:
    cfg = TuningConfig().updated({"scaling.max_connections": 40, "scaling.pending_queue": 10,
                                  "scaling.pending_timeout_s": 0.5})
    s = run_storm(cfg, 120, settle_s=2.0)
    assert s["held"] == 40 and s["held_by_worker"] == 40
    assert s["refused_1013"] == 80 and s["handshake_failed"] == 0
    assert s["admission"]["queued"] >= 1  # some waited in the pending queue first
    assert s["worker_alive"] and s["healthz_ok"]


def test_unreachable_redis_url_fails_before_anything_runs() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(WslabError, match=f"cannot reach Redis at {url}"):
        run_scale(TuningConfig(), ScaleOptions(connections=10, workers=2, redis_url=url))


def test_unreachable_load_is_refused_with_the_limit() -> None:
    with pytest.raises(WslabError, match=r"at most \d+ files"):
        run_scale(TuningConfig().updated({"scaling.max_connections": 100000}),
                  ScaleOptions(connections=30000, workers=1))


def test_missing_redis_server_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from wslab.harness import cluster

    monkeypatch.setattr(shutil, "which", lambda _n: None)
    monkeypatch.setattr(cluster, "Path", lambda *_a: Path("/nonexistent"))
    with pytest.raises(WslabError, match=r"apt-get install redis-server"):
        run_scale(TuningConfig(), ScaleOptions(connections=10, workers=2))


def test_cli_scale_json_single_worker() -> None:
    import typer

    from wslab.cli.scale_cmd import scale

    app = typer.Typer()
    app.command()(scale)
    result = CliRunner().invoke(app, ["-n", "50", "--broadcasts", "2", "--directs", "3",
                                      "--idle", "0.2", "--json"])
    assert result.exit_code == 0, result.output
    import json

    s = json.loads(result.output)
    assert s["broker"] == "memory" and s["broadcast_receipts"] == 100 and s["lost"] == 0
    assert s["direct_routes"] == {"local": 3}
