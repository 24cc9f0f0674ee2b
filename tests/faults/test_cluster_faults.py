"""Faults in the scaling layer: Redis restarted, a worker killed, nginx reloaded, a storm.

Every test starts its own redis-server, worker processes and nginx on loopback and leaves
nothing running (checked after each test). Clients run in the test's own event loop
(:class:`~wslab.harness.client.HoldClient`), so the test can read exactly what each
connection received and when it was away; workers are the real ``worker`` processes of
``wslab scale``, driven by their JSON command lines.

Broadcast messages carry a sequence number and the sender's ``time.monotonic()``, so a
message missing on a connection can be matched against the window in which that
connection was closed: "lost" here means "went out while the connection was away", and
every such message is accounted for; any other gap fails the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from services import needs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wslab.cli.scale_cmd import nginx_conf
from wslab.config import TuningConfig
from wslab.harness import commands as cmds
from wslab.harness.admission import CircuitBreaker
from wslab.harness.cluster import (
    Child,
    NginxFront,
    RedisServer,
    free_port,
    free_port_block,
    python_child,
)
from wslab.harness.holder import HoldClient
from wslab.harness.server import LiveServer
from wslab.harness.wiring import CLIENT_HEADER

needs_redis = needs("redis-server", "redis-server")  # fails, never skips, if missing
needs_nginx = needs("nginx", "nginx")
CONFIG = TuningConfig()
SLACK_S = 0.15  # a message handed over this close to a drop or a reopen may go either way


def _our_children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


@pytest.fixture(autouse=True)
def _nothing_left_running() -> Iterator[None]:
    before = _our_children()
    yield
    left = _our_children() - before
    assert not left, f"processes left running: {left}"


class Cluster:
    """Workers (and the processes around them) started by one test, stopped by :meth:`stop`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cfg = tmp / "config.yaml"
        CONFIG.save(self.cfg)
        self.namespace = f"wslab:fault:{os.getpid()}"
        self.workers: list[Child] = []
        self.redis: RedisServer | None = None
        self.nginx: NginxFront | None = None

    def start_redis(self, port: int = 0) -> RedisServer:
        self.redis = RedisServer(self.tmp / f"redis-{time.monotonic_ns()}", port=port)
        return self.redis

    def start_workers(self, count: int, *, reuse_port: bool) -> int:
        """``count`` workers on one SO_REUSEPORT port, or on consecutive ports; the port."""
        assert self.redis is not None
        base = 0 if reuse_port else free_port_block(count)
        for i in range(count):
            port = base if reuse_port else base + i
            args = ["worker", "--config", str(self.cfg), "--broker", "redis", "--redis-url",
                    self.redis.url, "--namespace", self.namespace, "--worker-id", str(i),
                    "--port", str(port)]
            child = python_child([*args, "--reuse-port"] if reuse_port else args,
                                 f"worker {i}")
            self.workers.append(child)
            line = child.readline(30)
            assert line.isdigit(), line
            if reuse_port and i == 0:
                base = int(line)
        return base

    async def ask(self, worker: int, command: cmds.Command,
                  timeout: float = 30) -> dict[str, Any]:
        return await asyncio.to_thread(self.workers[worker].ask, command, timeout)

    async def broadcast(self, worker: int, first: int, count: int,
                        interval_s: float = 0.01) -> None:
        answer = await self.ask(worker, cmds.Broadcast(start_seq=first, count=count,
                                                    interval_s=interval_s, size=128))
        assert answer["sent"] == count

    async def stats(self) -> list[dict[str, Any]]:
        return [await self.ask(i, cmds.Stats()) for i, w in enumerate(self.workers)
                if w.alive()]

    async def registry(self) -> dict[str, str]:
        """The connection registry as Redis holds it: label -> worker."""
        import redis.asyncio as aioredis

        assert self.redis is not None
        client = aioredis.Redis.from_url(self.redis.url)
        try:
            raw = await client.hgetall(f"{self.namespace}:conns")
        finally:
            await client.aclose()
        return {_text(k): _text(v) for k, v in raw.items()}

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for child in self.workers:
            child.stop(timeout=10)
        if self.redis is not None:
            self.redis.stop()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _until_async(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _seqs(client: HoldClient, lo: int, hi: int) -> dict[int, list[int]]:
    """Broadcast sequence numbers in ``lo..hi-1`` each connection received, in order."""
    out: dict[int, list[int]] = {n: [] for n in range(client.connections)}
    for n, kind, seq, _t_sent, _t_recv in client.stats.receipts:
        if kind == "b" and lo <= seq < hi:
            out[n].append(seq)
    return out


def _sent_at(clients: list[HoldClient]) -> dict[int, float]:
    """When each broadcast was handed over, from whichever connection received it."""
    return {seq: t_sent for c in clients for _n, kind, seq, t_sent, _t in c.stats.receipts
            if kind == "b"}


def _account_for_gaps(client: HoldClient, lo: int, hi: int, sent_at: dict[int, float],
                      victims: set[int]) -> dict[str, int]:
    """Check every gap in ``lo..hi-1`` against the connection's outage; count the lost.

    A connection outside ``victims`` must have every message once, in order. A victim may
    miss messages, but only one contiguous run of them, each handed over while that
    connection was away (within :data:`SLACK_S`), and it must not miss a message handed
    over while it was open well clear of its outage.
    """
    seqs = _seqs(client, lo, hi)
    away = {n: (down, back) for n, down, back in client.stats.outages}
    lost = {"victims": 0, "others": 0}
    for n, got in seqs.items():
        assert got == sorted(set(got)), f"connection {n}: duplicated or reordered {got}"
        missing = sorted(set(range(lo, hi)) - set(got))
        if n not in victims:
            lost["others"] += len(missing)
            continue
        lost["victims"] += len(missing)
        down, back = away[n]
        assert back is not None, f"connection {n} never came back"
        for seq in missing:
            assert down - SLACK_S <= sent_at[seq] <= back + SLACK_S, (
                f"connection {n} lost {seq}, sent at {sent_at[seq]:.3f}, outside its "
                f"outage {down:.3f}..{back:.3f}")
        if missing:
            assert missing == list(range(missing[0], missing[-1] + 1)), missing
        for seq in range(lo, hi):
            if sent_at[seq] < down - SLACK_S or sent_at[seq] > back + SLACK_S:
                assert seq in got, f"connection {n} missed {seq} while open"
    return lost


# --- Redis restarted -------------------------------------------------------------------


@needs_redis
def test_redis_restart_is_noticed_resubscribed_and_outage_publishes_are_counted(
        cluster: Cluster) -> None:
    conns = 40

    async def run() -> None:
        redis = cluster.start_redis()
        port = cluster.start_workers(2, reuse_port=True)
        client = HoldClient(f"ws://127.0.0.1:{port}/", CONFIG, connections=conns,
                            concurrency=conns)
        try:
            assert (await client.ramp()).opened == conns
            stats = await _until_async(
                lambda: _held(cluster, conns), 10, "both workers to hold the clients")
            held = [s["held"] for s in stats]
            assert min(held) > 0, held  # SO_REUSEPORT spread them: clients on both
            await cluster.broadcast(0, 0, 3)
            await _until(lambda: client.received("b") == 3 * conns, 10, "first broadcast")

            redis.kill()
            await asyncio.sleep(0.3)
            # Published while Redis is down: 5 from worker 0, 3 from worker 1.
            await cluster.broadcast(0, 100, 5)
            await cluster.broadcast(1, 200, 3)
            await asyncio.sleep(0.3)
            assert client.received("b") == 3 * conns  # none of them arrived anywhere

            cluster.start_redis(port=redis.port)  # same port: the workers' URL holds
            after = await _until_async(lambda: _reconnected(cluster), 15,
                                       "both brokers to reconnect")
            for s, outage_sent in zip(after, (5, 3), strict=True):
                c = s["counts"]
                assert c["broker_publish_failed"] == outage_sent, c
                assert c["broadcasts_failed"] == outage_sent, c
                assert c["broker_disconnects"] == 1 and c["broker_reconnects"] == 1, c
                assert c["broker_resubscribed"] == 2, c  # broadcast + own direct channel
                assert c["broker_reconnect_attempts"] >= 1
                # Redis came back empty; each worker wrote what it holds again.
                assert c["resyncs"] == 1 and c["reregistered"] == s["held"], c
            assert sum(s["held"] for s in after) == conns
            # Each worker's stats waited for its own resync only; asked again, once both
            # have written, the registry holds every connection.
            assert (await cluster.stats())[0]["registered"] == conns
            assert sorted(set((await cluster.registry()).values())) == ["0", "1"]

            await cluster.broadcast(1, 300, 3)
            await _until(lambda: client.received("b") == 6 * conns, 10,
                         "the broadcast after the restart")
            for n, got in _seqs(client, 0, 1000).items():
                assert got == [0, 1, 2, 300, 301, 302], (n, got)
            # Direct messages cross workers again: the direct channels were resubscribed
            # and the registry was rebuilt.
            directs = await cluster.ask(0, cmds.Direct(count=5))
            assert directs["routes"] == {"remote": 5}
            await _until(lambda: client.received("d") == 5, 10, "direct messages")
            assert client.stats.closed_early == 0  # clients never noticed
        finally:
            await client.close()

    asyncio.run(run())


async def _held(cluster: Cluster, total: int) -> list[dict[str, Any]] | None:
    stats = await cluster.stats()
    return stats if sum(s["held"] for s in stats) == total else None


async def _reconnected(cluster: Cluster) -> list[dict[str, Any]] | None:
    try:
        stats = await cluster.stats()
    except Exception:  # a worker's stats need the registry, which needs Redis
        return None
    return stats if all(s["counts"]["broker_reconnects"] >= 1 for s in stats) else None


# --- worker killed ---------------------------------------------------------------------


@needs_redis
def test_killed_worker_clients_reconnect_with_backoff_and_only_theirs_are_lost(
        cluster: Cluster) -> None:
    conns, count = 60, 100  # 2 s of broadcasts: the kill lands well inside, however slow

    async def run() -> None:
        cluster.start_redis()
        port = cluster.start_workers(2, reuse_port=True)
        client = HoldClient(f"ws://127.0.0.1:{port}/", CONFIG, connections=conns,
                            concurrency=conns, reconnect=True, backoff_base_s=0.2,
                            backoff_max_s=1.0, seed=7)
        try:
            assert (await client.ramp()).opened == conns
            await _until_async(lambda: _held(cluster, conns), 10, "clients held")
            where = await _until_async(lambda: _full_registry(cluster, conns), 10,
                                       "the registry")
            victims = {int(label.split("-")[1]) for label, w in where.items() if w == "1"}
            assert 0 < len(victims) < conns

            stream = asyncio.create_task(cluster.broadcast(0, 0, count, interval_s=0.02))
            await asyncio.sleep(0.3)
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.workers[1].stop, 1, signal.SIGKILL)
            await stream
            await _until(lambda: client.stats.reconnects == len(victims), 10,
                         "every victim to reconnect")
            await asyncio.sleep(0.2)

            s = client.stats
            assert s.closed_early == len(victims) and s.close_codes == {"1006": len(victims)}
            assert sorted(n for n, _d, _b in s.outages) == sorted(victims)
            assert all(down >= killed_at for _n, down, _b in s.outages)
            # Backoff: a first delay is drawn from the upper half of the base, and the
            # jitter spreads the victims instead of sending them back together.
            first = s.reconnect_delays[:len(victims)]
            assert all(0.1 <= d <= 0.2 for d in first)
            assert len({round(d, 6) for d in first}) == len(first)
            # Never sooner than the drawn delay; the upper bound is generous (5x the 1.5 s
            # one back-off and a handshake take here), as a loaded machine only adds.
            assert min(s.reconnect_s()) >= min(first)
            assert max(s.reconnect_s()) < 5 * 1.5
            lost = _account_for_gaps(client, 0, count, _sent_at([client]), victims)
            assert lost["others"] == 0
            assert lost["victims"] >= len(victims)  # each was away for >= 0.1 s of 0.02 s
            received = sum(len(v) for v in _seqs(client, 0, count).values())
            assert received + lost["victims"] == conns * count

            # Everyone is on worker 0 now, registered there, and gets the next broadcast.
            (alive,) = await cluster.stats()
            assert alive["held"] == conns
            await cluster.ask(0, cmds.Purge(worker="1"))
            assert set((await cluster.registry()).values()) == {"0"}
            await cluster.broadcast(0, 100, 5)
            await _until(lambda: client.received("b") == received + 5 * conns, 10,
                         "the broadcast after the kill")
            print(f"\nworker kill: {len(victims)}/{conns} connections on the dead worker, "
                  f"lost {lost['victims']} of {len(victims) * count} messages there, 0 "
                  f"elsewhere; reconnect {min(s.reconnect_s()):.3f}-"
                  f"{max(s.reconnect_s()):.3f} s")
        finally:
            await client.close()

    asyncio.run(run())


async def _full_registry(cluster: Cluster, total: int) -> dict[str, str] | None:
    where = await cluster.registry()
    return where if len(where) == total else None


# --- nginx reloaded --------------------------------------------------------------------


@needs_redis
@needs_nginx
def test_nginx_reload_keeps_sessions_and_a_shutdown_timeout_cuts_them_over(
        cluster: Cluster) -> None:
    n = 15
    sources = [f"127.0.0.{2 + i}" for i in range(16)]

    async def run() -> None:
        cluster.start_redis()
        base = cluster.start_workers(2, reuse_port=False)
        listen = free_port()
        conf = nginx_conf(CONFIG.updated({"scaling.workers": 2}), base, listen)
        nginx = cluster.nginx = NginxFront(conf, listen, cluster.tmp / "nginx")
        url = f"ws://127.0.0.1:{nginx.port}/"
        gens = [HoldClient(url, CONFIG, connections=n, source_addresses=sources,
                           prefix=f"g{i}", reconnect=True, backoff_base_s=0.1, seed=i)
                for i in range(3)]
        g1, g2, g3 = gens
        try:
            assert (await g1.ramp()).opened == n
            await cluster.broadcast(0, 0, 3)
            await _until(lambda: g1.received("b") == 3 * n, 10, "first broadcast")

            # Reload 1 (the generated config): the first nginx workers stop accepting but
            # keep carrying their upgraded sessions; new workers take new connections.
            first = await asyncio.to_thread(nginx.reload)
            assert set(first["old"]).isdisjoint(first["new"])
            lingering = {p for p, leaving in nginx.workers().items() if leaving}
            assert lingering and lingering <= set(first["old"])
            assert (await g2.ramp()).opened == n
            await cluster.broadcast(1, 10, 3)
            await _until(lambda: g1.received("b") + g2.received("b") == 9 * n, 10,
                         "broadcast after reload 1")

            # Reload 2 adds worker_shutdown_timeout 1s. It binds only workers started
            # under it: the workers it retires (reload 1's, holding g2) were started
            # without it and linger as well.
            second = await asyncio.to_thread(nginx.reload, ["worker_shutdown_timeout 1s;"])
            assert (await g3.ramp()).opened == n
            await asyncio.sleep(1.6)
            assert g1.stats.closed_early == g2.stats.closed_early == 0

            # Reload 3 retires the workers started under the timeout (holding g3): one
            # second later nginx closes those sessions, the clients reconnect.
            await asyncio.to_thread(nginx.reload)
            # 3 s of broadcasts: the cut, 1 s after the reload, lands well inside them.
            stream = asyncio.create_task(cluster.broadcast(0, 20, 100, interval_s=0.03))
            await _until(lambda: g3.stats.reconnects == n, 15, "g3 to be cut and reconnect")
            await stream
            await asyncio.sleep(0.3)
            assert g3.stats.closed_early == n
            assert set(g3.stats.close_codes) == {"1006"}  # nginx drops TCP, no close frame
            assert g1.stats.closed_early == g2.stats.closed_early == 0
            sent = _sent_at(gens)
            lost = [_account_for_gaps(g, 20, 120, sent, set(range(n)) if g is g3 else set())
                    for g in gens]
            assert [x["others"] for x in lost] == [0, 0, 0]
            assert lost[0]["victims"] == lost[1]["victims"] == 0
            assert lost[2]["victims"] >= n  # each was away >= 0.05 s of 0.03 s
            still = nginx.workers()
            # Generations 1 and 2 still run for g1 and g2 (a retired worker holding no
            # session exits at once, so not every old pid is still there).
            assert set(first["old"]) & set(still)
            assert (set(second["old"]) - set(first["old"])) & set(still)
            stats = await cluster.stats()
            assert sum(s["held"] for s in stats) == 3 * n
            print(f"\nnginx reload: {2 * n} sessions kept through lingering workers; {n} "
                  f"cut by worker_shutdown_timeout, reconnected in "
                  f"{min(g3.stats.reconnect_s()):.3f}-{max(g3.stats.reconnect_s()):.3f} s, "
                  f"lost {lost[2]['victims']} of {n * 100} broadcasts while away")
        finally:
            for g in gens:
                await g.close()

    asyncio.run(run())


# --- circuit breaker and pending queue -------------------------------------------------


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith("wslab_")}


def _bad_handshake(port: int) -> int:
    """A plain HTTP GET without the upgrade headers; the status the server answers.
    (The peer's failure: it never opens the breaker, ``test_hostile_handshakes.py``.)"""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return int(s.recv(1024).split()[1])


async def _open(port: int, label: str) -> ClientConnection:
    return await connect(f"ws://127.0.0.1:{port}/", additional_headers={CLIENT_HEADER: label},
                         open_timeout=5, ping_interval=None)


async def _close_code(ws: ClientConnection, timeout: float = 5) -> int | None:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code


def _reason(ws: ClientConnection) -> str:
    return ws.close_reason or ""


def _state(server: LiveServer) -> str:
    return server.admission.breaker.state


def _server_failures(server: LiveServer, n: int) -> None:
    """``n`` of the server's own failures, as its handler crashing reports them (real ones
    are in ``test_hostile_handshakes.py``)."""
    for _ in range(n):
        server.admission.failure("handler_error", time.monotonic())


def _storm_server() -> LiveServer:
    cfg = TuningConfig().updated({"scaling.max_connections": 2, "scaling.pending_queue": 1,
                                  "scaling.pending_timeout_s": 0.4})
    server = LiveServer(cfg)
    server.admission.breaker = CircuitBreaker(failure_threshold=3, window_s=10,
                                              cooldown_s=0.5)
    return server


def test_breaker_opens_half_opens_and_closes_with_pending_queue_counts() -> None:
    async def run() -> None:
        server = _storm_server()
        port = await server.start()
        adm = server.admission
        try:
            a, b = await _open(port, "a"), await _open(port, "b")
            c = await _open(port, "c")  # full: waits in the pending queue
            await _until(lambda: adm.waiting == 1, 5, "c to queue")
            d = await _open(port, "d")  # full and the queue is full: refused at once
            assert await _close_code(d) == 1013 and _reason(d).endswith("server full")
            await a.close()  # a slot frees: c takes it
            await _until(lambda: adm.counts["accepted_after_wait"] == 1, 5, "c admitted")
            e = await _open(port, "e")  # waits, and nothing frees up in time
            assert await _close_code(e) == 1013 and "timed out" in _reason(e)

            # A burst of bad handshakes is the peers' doing: the breaker stays closed ...
            statuses = [await asyncio.to_thread(_bad_handshake, port) for _ in range(3)]
            assert all(400 <= st < 500 for st in statuses), statuses
            assert _state(server) == "closed"
            _server_failures(server, 3)  # ... as many of the server's own failures open it
            assert _state(server) == "open"
            await b.close()
            f = await _open(port, "f")  # ... which refuses even with a slot free
            assert await _close_code(f) == 1013 and "breaker open" in _reason(f)
            m = await asyncio.to_thread(_metrics, port)
            assert m["wslab_connections_failed"] == 3
            assert m["wslab_connections_rejected"] == 3  # d, e, f
            assert m["wslab_closes_1013"] == 3
            assert m["wslab_connections_total"] == 3  # a, b, c

            # ... until the cool-down: one trial gets in, succeeds, and closes it.
            await asyncio.sleep(0.55)
            g = await _open(port, "g")
            await _until(lambda: "g" in server.sessions, 5, "the trial connection")
            assert _state(server) == "closed"
            h = await _open(port, "h")  # closed again: served as usual (c, g, then queue)
            await _until(lambda: adm.waiting == 1, 5, "h to queue")
            snap = adm.snapshot()
            assert snap["breaker_closed->open"] == 1 and snap["breaker_open->half-open"] == 1
            assert snap["breaker_half-open->closed"] == 1
            assert (snap["accepted"], snap["queued"], snap["accepted_after_wait"],
                    snap["rejected_full"], snap["rejected_timeout"],
                    snap["rejected_breaker"]) == (3, 3, 1, 1, 1, 1)
            for ws in (c, g, h):
                await ws.close()
        finally:
            await server.stop()

    asyncio.run(run())


def test_breaker_trial_that_times_out_in_the_queue_does_not_wedge_it() -> None:
    async def run() -> None:
        server = _storm_server()
        port = await server.start()
        try:
            a, b = await _open(port, "a"), await _open(port, "b")  # full
            _server_failures(server, 3)
            assert _state(server) == "open"
            await asyncio.sleep(0.55)
            trial = await _open(port, "trial")  # the half-open trial, queued: server full
            assert await _close_code(trial) == 1013 and "timed out" in _reason(trial)
            await a.close()
            await asyncio.sleep(0.6)  # past any cool-down
            late = await _open(port, "late")  # a slot is free and nothing has failed since
            await asyncio.sleep(0.2)
            assert "late" in server.sessions, (_state(server), late.close_reason)
            await late.close()
            await b.close()
        finally:
            await server.stop()

    asyncio.run(run())
