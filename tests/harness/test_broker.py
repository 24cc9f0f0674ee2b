"""Brokers and the connection registry against a real redis-server started by the test.

The in-memory broker and a Redis broker behave alike (publish reaches every subscriber,
the publisher included); an unreachable Redis is one clear line naming the URL; the
registry keeps who holds which connection, only the holder may remove an entry, and a
dead worker's entries are purged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from services import program

from wslab.errors import WslabError
from wslab.harness.broker import MemoryBroker, RedisBroker, connect_broker
from wslab.harness.cluster import RedisServer, free_port
from wslab.harness.registry import MemoryRegistry, RedisRegistry


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    program("redis-server", "redis-server")  # fails, never skips, if it is missing
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()
    assert not server.child.alive()


async def _roundtrip(broker: MemoryBroker | RedisBroker) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    await broker.subscribe("a", lambda d: got.append(("a1", d)))
    await broker.subscribe("a", lambda d: got.append(("a2", d)))
    await broker.subscribe("b", lambda d: got.append(("b", d)))
    for i in range(3):
        await broker.publish("a", b"m%d" % i)
    await broker.publish("b", b"\x00\xff")
    await broker.publish("nobody", b"x")
    for _ in range(100):
        if len(got) >= 7:
            break
        await asyncio.sleep(0.02)
    await broker.close()
    return got


def test_memory_and_redis_brokers_deliver_the_same(redis_url: str) -> None:
    mem = asyncio.run(_roundtrip(MemoryBroker()))

    async def redis_run() -> list[tuple[str, bytes]]:
        return await _roundtrip(await connect_broker("redis", redis_url))

    red = asyncio.run(redis_run())
    expected = [("a1", b"m0"), ("a2", b"m0"), ("a1", b"m1"), ("a2", b"m1"), ("a1", b"m2"),
                ("a2", b"m2"), ("b", b"\x00\xff")]
    assert mem == expected
    assert red == expected


def test_unreachable_redis_is_one_line_naming_the_url() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(WslabError) as info:
        asyncio.run(connect_broker("redis", url))
    message = str(info.value)
    assert url in message and "cannot reach Redis" in message and "\n" not in message


def test_unknown_broker_is_refused() -> None:
    with pytest.raises(WslabError, match="unknown broker"):
        asyncio.run(connect_broker("kafka"))


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_registry_holder_lookup_and_purge(kind: str, redis_url: str) -> None:
    async def run() -> None:
        client = None
        if kind == "redis":
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            reg: MemoryRegistry | RedisRegistry = RedisRegistry(client, f"t:{kind}")
        else:
            reg = MemoryRegistry()
        await reg.register(["c1", "c2", "c3"], "w0")
        await reg.register(["c4"], "w1")
        assert await reg.lookup("c2") == "w0" and await reg.lookup("c4") == "w1"
        assert await reg.count() == 4
        assert sorted(await reg.sample(10, exclude_worker="w0")) == ["c4"]
        # c3 reconnected to w1 before w0 noticed the close: w0 must not remove it.
        await reg.register(["c3"], "w1")
        await reg.unregister(["c1", "c3"], "w0")
        assert await reg.lookup("c1") is None and await reg.lookup("c3") == "w1"
        assert await reg.purge_worker("w1") == 2
        assert await reg.lookup("c4") is None
        assert await reg.count() == 1  # c2, still w0's
        if client is not None:
            await client.aclose()

    asyncio.run(run())


class _FlakyRegistry(MemoryRegistry):
    """Fails the first ``failures`` purges, as a pooled connection to a restarted Redis does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def purge_worker(self, worker: str) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Connection reset by peer")
        return await super().purge_worker(worker)


@pytest.mark.parametrize(("failures", "resyncs", "errors"), [(0, 1, 0), (2, 1, 2), (20, 0, 9)])
def test_a_failed_resync_is_retried_with_backoff_then_given_up(
        failures: int, resyncs: int, errors: int) -> None:
    from wslab.config import TuningConfig
    from wslab.harness import registry as registry_module
    from wslab.harness.registry import ClusterNode
    from wslab.harness.server import LiveServer

    async def main() -> None:
        server = LiveServer(TuningConfig(), scenario="echo")
        reg = _FlakyRegistry(failures)
        node = ClusterNode(server, MemoryBroker(), reg, "0")
        server.sessions.update({"a": None, "b": None})  # type: ignore[dict-item]
        await node.start()
        try:
            await asyncio.wait_for(node.resync(), 30)  # returns once written or given up
            c = node.counts
            assert (c["resyncs"], c["resync_errors"]) == (resyncs, errors)
            assert errors <= registry_module.RESYNC_RETRIES + 1
            assert await reg.count() == (2 if resyncs else 0)
        finally:
            server.sessions.clear()
            await node.stop()

    asyncio.run(main())
