"""Fan-out through one Redis against a 3-node Redis Cluster with sharded pub/sub.

Both sides are wslab's brokers as the ``wslab scale`` workers use them: ``RedisBroker``
(``PUBLISH``/``SUBSCRIBE`` on one private ``redis-server``) and ``RedisClusterBroker``
(``SPUBLISH``/``SSUBSCRIBE`` on a private 3-primary cluster, ``wslab/harness/
redis_cluster.py``). One publishing broker sends ``MESSAGES`` messages of 256 bytes, 64
in flight at a time, round-robin over 12 channels (as 12 workers' channels would be,
spread over the shards by their hash slots); two subscribing brokers (two workers)
subscribe to every channel, so each message is delivered twice. All brokers run in this
process, so the Python client is most of the cost on both sides: the rows say what a
worker sees, not what Redis could carry.

Rows:

- messages delivered per second, publish to last delivery, cluster against one Redis;
- Redis CPU per message published (user + system from psutil, in 10 ms ticks: the quick
  run is coarse), on the busiest cluster node against the one Redis: the share of the
  fan-out work one shard carries (sharded pub/sub keeps a message on its shard; a
  classic ``PUBLISH`` on a cluster is copied to every node);
- the same busiest-node CPU when the cluster is driven with classic ``PUBLISH`` and
  ``SUBSCRIBE`` (redis-py's cluster client, no wslab code), against sharded: what
  sharding saves each node.

Medians of at least three alternating turns after one untimed turn of each; ratios are
medians of the per-turn ratios. ``--quick``: 4,000 messages instead of 20,000.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from common import main, median, row, turn_ratio, turns

from wslab.harness.broker import RedisBroker
from wslab.harness.broker_cluster import RedisClusterBroker
from wslab.harness.cluster import RedisServer
from wslab.harness.redis_cluster import RedisCluster

CHANNELS = [f"bench:fanout:{i}" for i in range(12)]
SUBSCRIBERS = 2
IN_FLIGHT = 64  # below redis-py's pool of 100 connections per node
PAYLOAD = b"x" * 256


def _cpu(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        out.append(t.user + t.system)
    return out


async def _fan_out(make: Callable[[], Any], messages: int) -> tuple[float, int]:
    """Publish ``messages`` through a fresh publisher and subscribers; (seconds, delivered)."""
    pub = make()
    subs = [make() for _ in range(SUBSCRIBERS)]
    got = [0]

    def count(_data: bytes) -> None:
        got[0] += 1

    try:
        await pub.check()
        for sub in subs:
            await sub.check()
            for channel in CHANNELS:
                await sub.subscribe(channel, count)
        want = messages * SUBSCRIBERS
        started = time.perf_counter()
        for first in range(0, messages, IN_FLIGHT):
            batch = range(first, min(messages, first + IN_FLIGHT))
            done = await asyncio.gather(*(pub.publish(CHANNELS[i % len(CHANNELS)], PAYLOAD)
                                          for i in batch))
            assert all(done), f"a publish failed: {pub.last_error}"
        deadline = time.monotonic() + 60
        while got[0] < want and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return time.perf_counter() - started, got[0]
    finally:
        for broker in (pub, *subs):
            await broker.close()


async def _classic_cluster(url: str, messages: int) -> tuple[float, int]:
    """Classic PUBLISH / SUBSCRIBE through redis-py's cluster client (the peer)."""
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.cluster import RedisCluster as Client

    seeds = [ClusterNode("127.0.0.1", int(u.rsplit(":", 1)[1])) for u in url.split(",")]
    pub = Client(startup_nodes=seeds)
    subs = [Client(startup_nodes=seeds) for _ in range(SUBSCRIBERS)]
    pubsubs = []
    for sub in subs:
        await sub.initialize()
        ps = sub.pubsub(node=sub.get_primaries()[0])
        await ps.subscribe(*CHANNELS)
        pubsubs.append(ps)
    got = [0]

    async def read(ps: Any) -> None:
        while True:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None:
                got[0] += 1

    readers = [asyncio.create_task(read(ps)) for ps in pubsubs]
    try:
        await asyncio.sleep(0.2)
        want = messages * SUBSCRIBERS
        started = time.perf_counter()
        for first in range(0, messages, IN_FLIGHT):
            batch = range(first, min(messages, first + IN_FLIGHT))
            await asyncio.gather(*(pub.publish(CHANNELS[i % len(CHANNELS)], PAYLOAD)
                                   for i in batch))
        deadline = time.monotonic() + 60
        while got[0] < want and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return time.perf_counter() - started, got[0]
    finally:
        for task in readers:
            task.cancel()
        for ps in pubsubs:
            await ps.aclose()
        for client in (pub, *subs):
            await client.aclose()


def run(quick: bool) -> list[dict[str, Any]]:
    messages = 4000 if quick else 20000
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisServer(Path(tmp) / "single")
        cluster = RedisCluster(Path(tmp) / "cluster")
        try:
            single_pid = [single.child.pid]
            node_pids = [c.pid for c in cluster.children()]
            cpu: dict[str, list[float]] = {"single": [], "sharded": [], "classic": []}
            lost: list[int] = []

            def measure(name: str, pids: list[int], go: Callable[[], Any]) -> float:
                before = _cpu(pids)
                seconds, delivered = asyncio.run(go())
                spent = [a - b for a, b in zip(_cpu(pids), before, strict=True)]
                cpu[name].append(1e6 * max(spent) / messages)
                lost.append(messages * SUBSCRIBERS - delivered)
                return delivered / seconds

            def one() -> float:
                return measure("single", single_pid,
                               lambda: _fan_out(lambda: RedisBroker(single.url), messages))

            def sharded() -> float:
                return measure("sharded", node_pids, lambda: _fan_out(
                    lambda: RedisClusterBroker(cluster.url), messages))

            def classic() -> float:
                return measure("classic", node_pids,
                               lambda: _classic_cluster(cluster.url, messages))

            rates = turns([one, sharded, classic])
        finally:
            cluster.stop()
            single.stop()
    warm = 1  # the untimed warm-up turn's figures come first in each list
    cpu = {k: v[warm:] for k, v in cpu.items()}
    assert not any(lost), f"messages lost: {lost}"
    return [
        row("broker_cluster", f"fan-out through a 3-node cluster (sharded pub/sub), "
            f"{messages} messages x {SUBSCRIBERS} subscribers", median(rates[1]), "msg/s",
            peer="one redis-server (PUBLISH/SUBSCRIBE), same brokers",
            peer_value=median(rates[0]), ratio=turn_ratio(rates[1], rates[0])),
        row("broker_cluster", "Redis CPU per message: busiest cluster node "
            "(sharded) vs the one Redis", median(cpu["sharded"]), "us",
            peer="one redis-server", peer_value=median(cpu["single"]),
            ratio=turn_ratio(cpu["sharded"], cpu["single"])),
        row("broker_cluster", "busiest cluster node CPU per message: sharded vs "
            "classic PUBLISH on the same cluster", median(cpu["sharded"]), "us",
            peer="classic PUBLISH/SUBSCRIBE (redis-py cluster client)",
            peer_value=median(cpu["classic"]),
            ratio=turn_ratio(cpu["sharded"], cpu["classic"])),
    ]


if __name__ == "__main__":
    main(run)
