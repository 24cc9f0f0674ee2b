"""A private Redis Cluster on loopback: N ``redis-server`` processes in cluster mode, joined.

What lives here: :class:`RedisCluster`, which starts ``nodes`` primaries (no replicas) on
free loopback ports, each with its own directory for ``nodes.conf``, joins them with
``redis-cli --cluster create`` (or CLUSTER MEET and ADDSLOTS when ``redis-cli`` is
absent), waits until every node says ``cluster_state:ok``, and stops them all; and
:class:`ClusterNodeProcess`, one node, which can be stopped and started again on the same
port with the same ``nodes.conf`` (it rejoins: a restart the tests provoke). Every process
is tied to this one by ``lifeline`` (it dies with its parent).
What must not live here: the broker and the registry that use the cluster
(``broker_cluster.py``), the single private ``redis-server`` (``cluster.py``).

The settings every node gets, and why:

==================================  =======  ==============================================
setting                             value    why
==================================  =======  ==============================================
cluster-enabled                     yes      cluster mode
cluster-config-file                 per node kept in the node's directory, so a restart
                                             rejoins with the same id and slots
save / appendonly                   "" / no  no persistence: a restarted node is empty
cluster-require-full-coverage       no       the healthy shards keep serving while one
                                             node is down (default: all refuse)
cluster-allow-pubsubshard-when-down yes      sharded pub/sub goes on during an outage
cluster-node-timeout                5000 ms  failure detection
==================================  =======  ==============================================

A node's cluster bus listens on its port + 10000, so both must be free.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from wslab.errors import WslabError
from wslab.harness import lifeline
from wslab.harness.cluster import Child, need_binary
from wslab.harness.loadplan import free_port

BUS_OFFSET = 10000
SLOTS = 16384
NODE_TIMEOUT_MS = 5000


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(attempts: int = 200) -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    for _ in range(attempts):
        port = free_port()
        if port + BUS_OFFSET < 65536 and _port_free(port + BUS_OFFSET):
            return port
    raise WslabError("no free port pair (port, port + 10000) for a Redis Cluster node")


def _client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0,
                       socket_connect_timeout=1.0)


def cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` as a dict ({} if it does not answer)."""
    try:
        client = _client(port)
        try:
            raw = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
    except Exception:  # not up yet, or going down
        return {}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


class ClusterNodeProcess:
    """One cluster-mode ``redis-server`` on ``port``, its files in ``workdir``."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.child: Child | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again, with the same ``nodes.conf``) and wait for PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.child = Child([
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",
            "--cluster-allow-pubsubshard-when-down", "yes",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.workdir), "--maxclients", "1000", "--loglevel", "warning",
        ], f"redis-server (cluster node {self.port})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise WslabError(f"redis-server on port {self.port} did not start: "
                                 f"{self.child._error_tail()}")
            with contextlib.suppress(Exception):
                client = _client(self.port)
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            time.sleep(0.05)
        self.stop()
        raise WslabError(f"redis-server did not answer on port {self.port} in {timeout:g} s")

    def alive(self) -> bool:
        """Running?"""
        return self.child is not None and self.child.alive()

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL): its clients see their connections close."""
        if self.child is not None:
            self.child.stop(timeout=5)

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would; ``nodes.conf`` stays for a restart."""
        if self.child is not None:
            self.child.stop(timeout=5, sig=signal.SIGKILL)


class RedisCluster:
    """A private Redis Cluster of ``nodes`` primaries on loopback; :meth:`stop` ends it.

    Args:
        workdir: Parent of one directory per node.
        nodes: How many primaries (at least 3: ``redis-cli --cluster create`` wants 3).
        timeout: Longest wait for the cluster to say ``cluster_state:ok``.
    """

    def __init__(self, workdir: Path, nodes: int = 3, timeout: float = 30.0) -> None:
        if nodes < 3:
            raise WslabError("a Redis Cluster needs at least 3 primaries")
        binary = need_binary("redis-server", "redis-server")
        self.nodes: list[ClusterNodeProcess] = []
        try:
            for _ in range(nodes):
                port = cluster_port()
                node = ClusterNodeProcess(binary, port, workdir / f"node-{port}")
                self.nodes.append(node)
                node.start()
            self._join()
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The seed nodes, comma-separated: ``redis://127.0.0.1:P1,redis://127.0.0.1:P2,...``."""
        return ",".join(f"redis://{n.address}" for n in self.nodes)

    @property
    def ports(self) -> list[int]:
        """The nodes' ports."""
        return [n.port for n in self.nodes]

    def _join(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is not None:
            done = lifeline.run([cli, "--cluster", "create", *[n.address for n in self.nodes],
                                 "--cluster-replicas", "0", "--cluster-yes"],
                                capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip() or "no output")
                raise WslabError(f"redis-cli --cluster create failed: {last.splitlines()[-1]}")
            return
        self._join_by_hand()

    def _join_by_hand(self) -> None:
        """ADDSLOTSRANGE an equal share on each node, then MEET them all with the first."""
        share = SLOTS // len(self.nodes)
        for i, node in enumerate(self.nodes):
            first = i * share
            last = SLOTS - 1 if i == len(self.nodes) - 1 else first + share - 1
            client = _client(node.port)
            try:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                if i:
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1",
                                           self.nodes[0].port)
            finally:
                client.close()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every node runs and says ``cluster_state:ok`` and knows all nodes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [cluster_info(n.port) for n in self.nodes]
            if all(i.get("cluster_state") == "ok"
                   and i.get("cluster_known_nodes") == str(len(self.nodes)) for i in infos):
                return
            time.sleep(0.1)
        raise WslabError(f"the Redis Cluster on ports {self.ports} did not reach "
                         f"cluster_state:ok in {timeout:g} s")

    def children(self) -> list[Child]:
        """The running processes (for a caller that stops several groups at once)."""
        return [n.child for n in self.nodes if n.child is not None]

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
