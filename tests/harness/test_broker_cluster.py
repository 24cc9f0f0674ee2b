"""The sharded pub/sub broker and the registry on a real 3-node Redis Cluster.

The module starts one private cluster (three ``redis-server`` processes in cluster mode on
loopback, joined by ``redis-cli --cluster create``). The tests check that the broker really
uses sharded pub/sub (each message is counted as an ``SPUBLISH`` on the owning node only,
and no node forwards a classic publish over the cluster bus), that broadcasts and direct
messages cross two real worker processes with none lost, before and after the node holding
the broadcast channel and the registry is killed and started again on its port, and that
``wslab scale --broker redis-cluster`` starts a cluster of its own and loses nothing.

What is guaranteed during the outage, as for one Redis: a broadcast published while its
channel's shard is down is refused at once and counted (``broadcasts_failed``, and the
broker's ``publish_failed``); none of it is delivered later; once the brokers report the
reconnect (and each worker has written its registry entries again), nothing published is
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from redis.crc import key_slot
from services import program

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import commands as cmds
from wslab.harness.broker_cluster import connect_cluster_broker, parse_seeds
from wslab.harness.cluster import Child, free_port, python_child
from wslab.harness.holder import HoldClient
from wslab.harness.redis_cluster import ClusterNodeProcess, RedisCluster, cluster_info
from wslab.harness.scale import ScaleOptions, run_scale

CONFIG = TuningConfig()


def _our_children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    program("redis-server", "redis-server")  # fails, never skips, if it is missing
    started = RedisCluster(tmp_path_factory.mktemp("rc"), nodes=3)
    try:
        yield started
    finally:
        started.stop()
    assert not any(n.alive() for n in started.nodes)


@pytest.fixture(autouse=True)
def _nothing_left_running(cluster: RedisCluster) -> Iterator[None]:
    before = _our_children()
    yield
    nodes = {c.pid for c in cluster.children()}
    left = _our_children() - before - nodes
    assert not left, f"processes left running: {left}"


def _owner_of(name: str, cluster: RedisCluster) -> int:
    """The port of the primary owning ``name``'s hash slot, as the cluster says."""
    return _owner_of_slot(cluster, key_slot(name.encode()))


def _owner_of_slot(cluster: RedisCluster, slot: int) -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=cluster.ports[0])
    try:
        shards = client.execute_command("CLUSTER", "SLOTS")
    finally:
        client.close()
    return next(int(s[2][1]) for s in shards if int(s[0]) <= slot <= int(s[1]))


def _node_stats(port: int) -> dict[str, int]:
    """SPUBLISH / PUBLISH calls and cluster-bus publish messages counted by one node."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        cmd = client.info("commandstats")
    finally:
        client.close()
    info = cluster_info(port)
    return {"spublish": int(cmd.get("cmdstat_spublish", {}).get("calls", 0)),
            "publish": int(cmd.get("cmdstat_publish", {}).get("calls", 0)),
            "bus_publish_sent": int(info.get("cluster_stats_messages_publish_sent", 0)),
            "bus_publish_received": int(info.get("cluster_stats_messages_publish_received",
                                                 0))}


def _shardnumsub(port: int, channels: list[str]) -> dict[str, int]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        raw = client.execute_command("PUBSUB", "SHARDNUMSUB", *channels)
    finally:
        client.close()
    pairs = zip(raw[::2], raw[1::2], strict=True)
    return {k.decode(): int(v) for k, v in pairs}


def test_seeds_parse_and_bad_ones_are_one_line() -> None:
    assert parse_seeds("redis://a:7000, b:7001,redis://c") == [("a", 7000), ("b", 7001),
                                                               ("c", 6379)]
    for bad in ("", " , ", "http://a:1", "redis://a:notaport"):
        with pytest.raises(WslabError):
            parse_seeds(bad)
    url = f"redis://127.0.0.1:{free_port()}"
    with pytest.raises(WslabError) as info:
        asyncio.run(connect_cluster_broker(url))
    assert "cannot reach the Redis Cluster" in str(info.value) and "\n" not in str(info.value)


BY_HAND = """
import sys, tempfile
from pathlib import Path
import wslab.harness.redis_cluster as rc
rc.shutil.which = lambda name: None  # as on a host without redis-cli
cluster = rc.RedisCluster(Path(tempfile.mkdtemp()))
print(" ".join(str(c.pid) for c in cluster.children()), cluster.url, flush=True)
sys.stdin.read()
"""


def test_without_redis_cli_nodes_meet_by_hand_and_die_with_their_parent() -> None:
    import signal
    import subprocess
    import sys

    parent = subprocess.Popen([sys.executable, "-c", BY_HAND], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        *pid_words, url = parent.stdout.readline().split()
        pids = [int(p) for p in pid_words]
        ports = [s[1] for s in parse_seeds(url)]
        assert len(pids) == 3 and len(ports) == 3
        for port in ports:
            info = cluster_info(port)
            assert info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "3"
        assert cluster_info(ports[0])["cluster_slots_assigned"] == "16384"
        parent.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        parent.wait(10)
        deadline = time.monotonic() + 10
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                  for p in pids):
            assert time.monotonic() < deadline, "cluster nodes outlived their parent"
            time.sleep(0.05)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


def test_scale_refuses_an_unknown_broker_and_an_unreachable_cluster_in_one_line() -> None:
    with pytest.raises(WslabError, match=r"unknown broker 'kafka'; known: memory, redis, "
                                         r"redis-cluster"):
        run_scale(CONFIG, ScaleOptions(connections=10, workers=2, broker="kafka"))
    with pytest.raises(WslabError, match=r"^bad Redis Cluster seed 'http://h:1': want "):
        run_scale(CONFIG, ScaleOptions(connections=10, workers=2, broker="redis-cluster",
                                       redis_url="redis://h:2,http://h:1"))
    port = free_port()
    with pytest.raises(WslabError) as info:
        run_scale(CONFIG, ScaleOptions(connections=10, workers=2, broker="redis-cluster",
                                       redis_url=f"redis://127.0.0.1:{port}"))
    message = str(info.value)
    assert f"cannot reach the Redis Cluster at 127.0.0.1:{port}" in message, message
    assert "\n" not in message


def test_each_message_is_an_spublish_on_the_owning_shard_only(cluster: RedisCluster) -> None:
    # One channel per node: names tried in order until each node owns one.
    channels: dict[int, str] = {}
    i = 0
    while len(channels) < 3:
        name = f"t:shard:{i}"
        channels.setdefault(_owner_of(name, cluster), name)
        i += 1
    per_channel = 5

    async def run() -> dict[str, list[bytes]]:
        # The publisher knows only the first node, the subscriber only the last.
        pub = await connect_cluster_broker(f"redis://127.0.0.1:{cluster.ports[0]}")
        sub = await connect_cluster_broker(f"redis://127.0.0.1:{cluster.ports[2]}")
        got: dict[str, list[bytes]] = {c: [] for c in channels.values()}
        try:
            for channel in channels.values():
                await sub.subscribe(channel, got[channel].append)
            for port, channel in channels.items():
                others = [c for c in channels.values() if c != channel]
                assert _shardnumsub(port, [channel, *others]) == {
                    channel: 1, **dict.fromkeys(others, 0)}
            before = {p: _node_stats(p) for p in cluster.ports}
            for n in range(per_channel):
                for channel in channels.values():
                    assert await pub.publish(channel, b"%s/%d" % (channel.encode(), n))
            deadline = time.monotonic() + 10
            while sum(map(len, got.values())) < 3 * per_channel:
                assert time.monotonic() < deadline, got
                await asyncio.sleep(0.02)
            after = {p: _node_stats(p) for p in cluster.ports}
        finally:
            await pub.close()
            await sub.close()
        for port in cluster.ports:
            delta = {k: after[port][k] - before[port][k] for k in after[port]}
            # Each node served exactly the SPUBLISHes of its own channel; nothing went
            # over the cluster bus (a classic PUBLISH is copied to every node).
            assert delta == {"spublish": per_channel, "publish": 0, "bus_publish_sent": 0,
                             "bus_publish_received": 0}, (port, delta)
        return got

    got = asyncio.run(run())
    for channel, messages in got.items():
        assert messages == [b"%s/%d" % (channel.encode(), n) for n in range(per_channel)]


def _move_slot(cluster: RedisCluster, slot: int, to_port: int) -> None:
    """Hand an empty slot to another primary, as resharding does (IMPORTING, MIGRATING,
    then NODE on every node)."""
    import redis

    clients = {p: redis.Redis(host="127.0.0.1", port=p) for p in cluster.ports}
    try:
        ids = {p: c.execute_command("CLUSTER", "MYID").decode() for p, c in clients.items()}
        from_port = _owner_of_slot(cluster, slot)
        clients[to_port].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                         ids[from_port])
        clients[from_port].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                           ids[to_port])
        for port in (to_port, from_port, *cluster.ports):
            clients[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])
    finally:
        for client in clients.values():
            client.close()


def test_a_channel_follows_its_slot_to_another_node(cluster: RedisCluster) -> None:
    channel = f"t:moving:{os.getpid()}"
    slot = key_slot(channel.encode())
    home = _owner_of(channel, cluster)
    away = next(p for p in cluster.ports if p != home)

    async def run() -> list[bytes]:
        pub = await connect_cluster_broker(cluster.url)
        sub = await connect_cluster_broker(cluster.url)
        got: list[bytes] = []
        try:
            await sub.subscribe(channel, got.append)
            assert await pub.publish(channel, b"before")
            await _until(lambda: got == [b"before"], 10, "the first message")
            _move_slot(cluster, slot, away)
            # The old owner tells the subscriber its shard channel is gone (SUNSUBSCRIBE);
            # the broker follows it to the new owner.
            await _until(lambda: _shardnumsub(away, [channel]) == {channel: 1}, 10,
                         "the subscription on the new owner")
            assert _shardnumsub(home, [channel]) == {channel: 0}
            assert sub.counts["rerouted"] == 1
            for n in range(3):  # the publisher's slot map is stale: MOVED, then followed
                assert await pub.publish(channel, b"after %d" % n)
            await _until(lambda: len(got) == 4, 10, "the messages after the move")
        finally:
            await pub.close()
            await sub.close()
            _move_slot(cluster, slot, home)  # the other tests expect the first layout
        return got

    assert asyncio.run(run()) == [b"before", b"after 0", b"after 1", b"after 2"]


class Workers:
    """Two real ``worker`` processes of ``wslab scale`` on one SO_REUSEPORT port."""

    def __init__(self, tmp: Path, url: str, namespace: str) -> None:
        self.cfg = tmp / "config.yaml"
        CONFIG.save(self.cfg)
        self.url = url
        self.namespace = namespace
        self.children: list[Child] = []
        self.port = 0

    def start(self, count: int) -> int:
        for i in range(count):
            child = python_child(
                ["worker", "--config", str(self.cfg), "--broker", "redis-cluster",
                 "--redis-url", self.url, "--namespace", self.namespace, "--worker-id",
                 str(i), "--port", str(self.port), "--reuse-port"], f"worker {i}")
            self.children.append(child)
            line = child.readline(30)
            assert line.isdigit(), line
            self.port = int(line)
        return self.port

    async def ask(self, worker: int, command: cmds.Command) -> dict[str, Any]:
        return await asyncio.to_thread(self.children[worker].ask, command, 30)

    async def stats(self) -> list[dict[str, Any]]:
        return [await self.ask(i, cmds.Stats()) for i in range(len(self.children))]

    def stop(self) -> None:
        for child in self.children:
            child.stop(timeout=10)


async def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _namespace_on_one_node(cluster: RedisCluster) -> tuple[str, ClusterNodeProcess]:
    """A namespace whose broadcast channel and registry keys live on the same node."""
    for i in range(10000):
        ns = f"wslab:rc{os.getpid()}:{i}"
        owner = _owner_of(f"{ns}:broadcast", cluster)
        if owner == _owner_of("{" + ns + "}:conns", cluster):
            return ns, next(n for n in cluster.nodes if n.port == owner)
    raise AssertionError("no namespace found")


def _seqs(client: HoldClient) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {n: [] for n in range(client.connections)}
    for n, kind, seq, _sent, _recv in client.stats.receipts:
        if kind == "b":
            out[n].append(seq)
    return out


async def _reconnected(workers: Workers) -> list[dict[str, Any]] | None:
    try:
        stats = await workers.stats()
    except Exception:  # a worker's stats read the registry, which may still be away
        return None
    ok = all(s["counts"]["broker_reconnects"] >= 1 and s["counts"]["resyncs"] >= 1
             for s in stats)
    return stats if ok else None


def test_two_workers_lose_nothing_before_and_after_a_shard_restarts(
        cluster: RedisCluster, tmp_path: Path) -> None:
    conns = 40
    namespace, victim = _namespace_on_one_node(cluster)
    workers = Workers(tmp_path, cluster.url, namespace)

    async def broadcast(worker: int, first: int, count: int) -> None:
        answer = await workers.ask(worker, cmds.Broadcast(start_seq=first, count=count,
                                                          interval_s=0.01, size=128))
        assert answer["sent"] == count

    async def run() -> None:
        port = workers.start(2)
        client = HoldClient(f"ws://127.0.0.1:{port}/", CONFIG, connections=conns,
                            concurrency=conns)
        try:
            assert (await client.ramp()).opened == conns
            stats = await _until(lambda: _held(workers, conns), 10, "clients held")
            assert min(s["held"] for s in stats) > 0  # clients on both workers
            await _until(lambda: _registered(workers, conns), 10, "every entry written")
            await broadcast(0, 0, 2)
            await broadcast(1, 10, 2)
            await _until(lambda: client.received("b") == 4 * conns, 10, "broadcasts")
            for w in (0, 1):
                answer = await workers.ask(w, cmds.Direct(count=5, interval_s=0.0))
                assert answer["routes"] == {"remote": 5}, answer
            await _until(lambda: client.received("d") == 10, 10, "direct messages")

            victim.kill()  # holds the broadcast channel and the registry
            await asyncio.sleep(0.3)
            await broadcast(0, 100, 3)  # refused: counted, never delivered
            await asyncio.sleep(0.3)
            assert client.received("b") == 4 * conns

            victim.start()  # same port, same nodes.conf: it rejoins, empty
            cluster.wait_ok(20)
            after = await _until(lambda: _reconnected(workers), 20, "the brokers to resync")
            c0 = after[0]["counts"]
            assert c0["broadcasts_failed"] == 3 and c0["broker_publish_failed"] == 3, c0
            for s in after:
                c = s["counts"]
                assert c["broker_disconnects"] == 1 and c["broker_reconnects"] == 1, c
                assert c["reregistered"] == s["held"], c
            await _until(lambda: _registered(workers, conns), 10, "the registry rebuilt")

            await broadcast(1, 300, 3)
            await _until(lambda: client.received("b") == 7 * conns, 10, "after restart")
            for n, got in _seqs(client).items():
                assert got == [0, 1, 10, 11, 300, 301, 302], (n, got)
            for w in (0, 1):
                answer = await workers.ask(w, cmds.Direct(count=5, interval_s=0.0))
                assert answer["routes"] == {"remote": 5}, answer
            await _until(lambda: client.received("d") == 20, 10, "directs after restart")
            assert client.stats.closed_early == 0
        finally:
            await client.close()

    try:
        asyncio.run(run())
    finally:
        workers.stop()


async def _held(workers: Workers, total: int) -> list[dict[str, Any]] | None:
    stats = await workers.stats()
    return stats if sum(s["held"] for s in stats) == total else None


async def _registered(workers: Workers, total: int) -> bool:
    return all(s["registered"] == total for s in await workers.stats())


def test_scale_with_its_own_cluster_loses_nothing() -> None:
    s = run_scale(CONFIG, ScaleOptions(connections=200, workers=2, broker="redis-cluster",
                                       broadcasts=3, directs=10, idle_s=0.2)).summary
    assert s["broker"] == "redis-cluster" and s["opened"] == 200
    assert min(s["held_per_worker"]) > 0
    assert s["broadcast_receipts"] == 200 * 3
    assert (s["lost"], s["duplicated"], s["reordered"]) == (0, 0, 0)
    assert s["direct_routes"] == {"remote": 10} and s["directs_received"] == 10
    assert s["registered"] == 200
