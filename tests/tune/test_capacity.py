"""``wslab plan``: the capacity arithmetic against sums worked by hand, and its command line.

Every expected figure below is worked out in the comment beside it from the inputs the test
chooses (or the documented defaults: 13.2 / 48.7 KiB, 10,000 connections per worker, 12,500
per holder, 13 us per send, 14.5 us per receipt, 41.7 us per ping round, 28,232 ports).
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from wslab.cli import plan_cmd, run
from wslab.errors import WslabError
from wslab.tune.capacity import CapacityInputs, plan_capacity

MILLION = 1_000_000


def value(quantity: str, **kw: object) -> object:
    return plan_capacity(CapacityInputs(**kw)).value(quantity)  # type: ignore[arg-type]


def test_memory_worked_by_hand() -> None:
    # 1,000,000 x 13.2 KiB = 13,200,000 KiB; / 1,048,576 KiB per GiB = 12.588 GiB
    assert value("server RSS for all connections", connections=MILLION,
                 compression="none") == pytest.approx(12.59, abs=0.005)
    # with the 4 KiB of kernel memory per socket: 17,200,000 KiB = 16.40 GiB
    assert value("server memory with kernel sockets", connections=MILLION,
                 compression="none") == pytest.approx(16.40, abs=0.005)
    # deflate, measured: 48.7 KiB x 1,000,000 = 48,700,000 KiB = 46.44 GiB
    assert value("server RSS for all connections", connections=MILLION) == \
        pytest.approx(46.44, abs=0.005)
    # a user's own figure wins: 30 KiB x 1,000,000 = 28.61 GiB
    assert value("server RSS for all connections", connections=MILLION,
                 mem_kib_per_conn=30.0) == pytest.approx(28.61, abs=0.005)


def test_deflate_state_follows_zlibs_formula() -> None:
    # 12/5: (1 << 14) + (1 << 14) + (1 << 12) = 36,864 bytes = 36 KiB
    assert value("deflate state per connection (zlib formula)", connections=1) == 36.0
    # 15/8: (1 << 17) + (1 << 17) + (1 << 15) = 294,912 bytes = 288 KiB; not measured, so
    # the connection is the measured compression-off 13.2 KiB plus that state: 301.2 KiB
    assert value("memory per connection used", connections=1, window_bits=15,
                 mem_level=8) == pytest.approx(301.2)
    assert value("memory per connection used", connections=1) == 48.7  # measured at 12/5


def test_ports_workers_and_holders_worked_by_hand() -> None:
    # 1,000,000 / 28,232 ports per address = 35.4 -> 36 addresses
    assert value("source addresses", connections=MILLION) == 36
    # two destinations double the ports per address: 1,000,000 / 56,464 = 17.7 -> 18
    assert value("source addresses", connections=MILLION, destinations=2) == 18
    assert value("source addresses", connections=28_232) == 1
    assert value("source addresses", connections=28_233) == 2
    # 1,000,000 / 10,000 per worker = 100 workers
    assert value("server workers", connections=MILLION) == 100
    # descriptors bind first: 5,000 - 256 spare = 4,744 each; 1,000,000 / 4,744 = 210.8 -> 211
    assert value("server workers", connections=MILLION, fd_limit=5000) == 211
    # 1,000,000 / 12,500 per holder = 80 holders
    assert value("holder processes", connections=MILLION) == 80


def test_cpu_hosts_and_heartbeat_worked_by_hand() -> None:
    # compression off: 10,000 per worker x 13 us = 130 ms of a worker's CPU per broadcast
    assert value("fan-out CPU per broadcast, per worker", connections=MILLION,
                 compression="none") == 130.0
    # deflate compresses for each connection too: 10,000 x (13 + 16 us) = 290 ms
    assert value("fan-out CPU per broadcast, per worker", connections=MILLION) == 290.0
    # off: 1/s x 1,000,000 x 13 us = 13 cores; 50,000 pings/s x 41.7 us = 2.085 cores
    assert value("server cores busy (fan-out + heartbeat)", connections=MILLION,
                 compression="none") == pytest.approx(15.085, abs=0.006)
    # deflate: 1,000,000 x 29 us = 29 cores + 2.085
    assert value("server cores busy (fan-out + heartbeat)", connections=MILLION) == \
        pytest.approx(31.085, abs=0.006)
    # 2-core hosts: 100 workers need 100 cores (busy 31.1 / 0.5 = 63 is fewer) -> 50 hosts
    assert value("server hosts", connections=MILLION) == 50
    # 32-core hosts: 100 / 32 -> 4; RAM 50.26 GiB / (24 x 0.75) -> 3; so 4
    assert value("server hosts", connections=MILLION, cores_per_host=32) == 4
    # 16 GiB hosts: 50.26 / 12 = 4.2 -> 5 hosts, more than the 4 the cores need
    assert value("server hosts", connections=MILLION, cores_per_host=32,
                 ram_gib_per_host=16.0) == 5
    # 20 broadcasts/s, off: 260 + 2.085 = 262.1 busy; / 0.5 = 525 cores; / 32 = 16.4 -> 17
    assert value("server hosts", connections=MILLION, cores_per_host=32,
                 broadcasts_per_s=20.0, compression="none") == 17
    # deflate: 20 x 29 = 580 + 2.085 = 582.1; / 0.5 = 1,165 cores; / 32 = 36.4 -> 37
    assert value("server hosts", connections=MILLION, cores_per_host=32,
                 broadcasts_per_s=20.0) == 37
    # heartbeat at 20 s: 50,000 rounds/s x (ping 2+4 + masked pong 2+4+4 = 16 bytes)
    assert value("heartbeat ping/pong rounds", connections=MILLION) == 50_000
    assert value("heartbeat traffic, WebSocket bytes", connections=MILLION) == 800_000
    # plus two segments of 52 bytes of TCP/IP headers: 120 bytes x 50,000 = 6,000,000
    assert value("heartbeat traffic, with TCP/IP headers", connections=MILLION) == 6_000_000
    # at 5 s the rounds are four times as many
    assert value("heartbeat traffic, WebSocket bytes", connections=MILLION,
                 ping_interval_s=5.0) == 3_200_000


def test_clients_egress_redis_and_nginx_worked_by_hand() -> None:
    # clients: 36 hosts of one address each; 80 holders on 2 cores = 40 hosts -> 40
    assert value("client hosts", connections=MILLION) == 40
    # 4 addresses per host: 9 hosts by ports; the cores still need 40
    assert value("client hosts", connections=MILLION, source_addresses=4) == 40
    assert value("client hosts", connections=MILLION, cores_per_host=64,
                 source_addresses=4) == 9  # 80 holders / 64 cores = 2; ports 36 / 4 = 9
    # 256-byte broadcast: frame 4 + 256 = 260, + 52 TCP/IP = 312 bytes x 8 x 1e6 = 2.496 Gbit
    assert value("broadcast egress", connections=MILLION) == pytest.approx(2.496)
    # ratio 0.25: 64-byte payload, 2-byte header, + 52 = 118 bytes -> 0.944 Gbit/s
    assert value("broadcast egress", connections=MILLION,
                 compression_ratio=0.25) == pytest.approx(0.944)
    # Redis: 1 broadcast/s to 100 workers + 200,000 directs/s = 200,100; / 79,000 -> 3
    assert value("Redis shards", connections=MILLION, directs_per_s=200_000.0) == 3
    assert value("Redis shards", connections=MILLION) == 1
    # every worker subscribes to the broadcast channel: 10/s x 100 workers + 5,000 directs
    assert value("Redis deliveries", connections=MILLION, broadcasts_per_s=10.0,
                 directs_per_s=5000.0) == 6000
    # 1,000 broadcasts/s x 100 workers = 100,000 deliveries / 79,000 per shard -> 2 shards
    assert value("Redis shards", connections=MILLION, broadcasts_per_s=1000.0) == 2
    # nginx: 2 x 1,000,000 / (50 hosts x 2 cores) = 20,000 worker_connections each
    assert value("nginx worker_connections", connections=MILLION, nginx=True) == 20_000
    # machines: 50 server + 40 client + 1 Redis host
    assert value("machines", connections=MILLION) == 91


def test_one_broadcast_channel_beyond_a_shard_is_a_warning() -> None:
    # 1,000 broadcasts/s x 100 workers = 100,000 deliveries/s on one channel > 79,000
    hot = plan_capacity(CapacityInputs(MILLION, broadcasts_per_s=1000.0))
    assert len(hot.warnings) == 1 and "split broadcasts" in hot.warnings[0]
    assert plan_capacity(CapacityInputs(MILLION, broadcasts_per_s=700.0)).warnings == []


@pytest.mark.parametrize("kw", [{}, {"compression": "none"}, {"broadcasts_per_s": 50.0},
                                {"cores_per_host": 48, "ram_gib_per_host": 64.0},
                                {"source_addresses": 250, "nginx": True}])
def test_more_connections_never_need_fewer_machines(kw: dict[str, object]) -> None:
    counts = [1, 7, 999, 10_000, 10_001, 28_232, 28_233, 77_777, 250_000, MILLION]
    counts += [2 * c for c in counts]
    counts.sort()
    keys = ("machines", "server hosts", "client hosts", "server workers", "holder processes",
            "source addresses", "Redis shards")
    last = dict.fromkeys(keys, 0)
    for n in counts:
        plan = plan_capacity(CapacityInputs(n, **kw))  # type: ignore[arg-type]
        for key in keys:
            assert plan.value(key) >= last[key], (key, n)
            last[key] = plan.value(key)
        doubled = plan_capacity(CapacityInputs(2 * n, **kw))  # type: ignore[arg-type]
        assert doubled.value("machines") >= plan.value("machines")


@pytest.mark.parametrize(("kw", "words"), [
    ({"connections": 0}, "--connections"),
    ({"connections": 10, "compression": "zstd"}, "--compression"),
    ({"connections": 10, "ram_usable": 1.5}, "--ram-usable"),
    ({"connections": 10, "ping_interval_s": 0.0}, "--ping-interval-s"),
    ({"connections": 10, "fd_limit": 100}, "--fd-limit"),
    ({"connections": 10, "window_bits": 16}, "window bits"),
    ({"connections": 10, "send_us_per_conn": float("nan")}, "--send-us-per-conn"),
])
def test_bad_input_names_the_option(kw: dict[str, object], words: str) -> None:
    with pytest.raises(WslabError, match=words):
        CapacityInputs(**kw)  # type: ignore[arg-type]


def test_cli_json_and_table(capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(["plan", "-n", "1000000", "--compression", "none", "--kernel-kib-per-conn",
                "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["quantity"]: r for r in data["rows"]}
    assert rows["server RSS for all connections"]["value"] == pytest.approx(12.59, abs=0.005)
    assert rows["source addresses"]["value"] == 36
    assert rows["server RSS for all connections"]["inputs"] == {
        "connections": MILLION, "mem_kib_per_conn": 13.2}
    assert data["inputs"]["compression"] == "none"
    assert all(r["formula"] for r in data["rows"])
    monkeypatch.setattr(plan_cmd, "out", Console(width=300, highlight=False))  # no wrapping
    assert run(["plan", "-n", "1000000", "--source-addresses", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    clients = [ln for ln in lines if ln.startswith("│ client hosts ")]
    # 36 addresses / 4 per host = 9 hosts by ports; 80 holders / 2 cores = 40 by cores
    assert len(clients) == 1 and "│        40 │" in clients[0]
    assert "addresses / addresses per host = 9" in clients[0]
    assert "source_addresses=4" in clients[0]


@pytest.mark.parametrize(("argv", "words"), [
    (["plan", "-n", "0"], "--connections"),
    (["plan", "-n", "10", "--compression", "zstd"], "--compression"),
    (["plan", "-n", "10", "--ram-usable", "2"], "--ram-usable"),
    (["plan", "-n", "lots"], "valid integer"),
    (["plan"], "--connections"),
])
def test_cli_bad_input_is_one_line_exit_2(argv: list[str], words: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out
