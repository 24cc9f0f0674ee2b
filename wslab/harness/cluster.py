"""The processes of a scale run: workers, load holders, a private redis-server, nginx.

What lives here: limits and planning (:func:`plan_load`: how many client processes and
127.0.0.x source addresses a number of connections needs, and why a number cannot be
reached), :func:`raise_nofile`, :class:`Child` (a child process spoken to in JSON lines over
stdin/stdout, tied to this process by ``lifeline`` so it dies with it even on SIGKILL,
stopped with its whole process group; :func:`stop_children` stops several at once),
:class:`RedisServer` (a private ``redis-server`` on a free loopback port, no persistence)
and :class:`NginxFront` (nginx from the exporter's config, in a private prefix directory).
What must not live here: the run itself (``scale.py``), the worker's and holder's insides
(``procs.py``, ``registry.py``, ``client.py``).

Limits of the machine this was built for: a process may open 20,000 files (hard limit);
ports 32768-60999 are ephemeral, about 28k per source address and destination.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness import lifeline

FD_SLACK = 256  # descriptors a process needs besides sockets (libraries, logs, pipes)
BALANCE_SLACK = 1.25  # SO_REUSEPORT and hashing spread unevenly: room per worker
PER_CLIENT_PROCESS = 5000  # connections per holder process (they share 2 cores)


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def ephemeral_ports() -> int:
    """How many ephemeral ports the kernel hands out per source address and destination."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(hi) - int(lo) + 1
    except (OSError, ValueError):
        return 28232


@dataclass
class LoadPlan:
    """How a run's connections are spread, and what stops it (``problems``)."""

    connections: int
    workers: int
    client_processes: int
    per_process: list[int]
    source_addresses: list[str]
    fd_limit: int
    ports_per_address: int
    problems: list[str] = field(default_factory=list)


def plan_load(connections: int, workers: int, *, nginx: bool = False,
              max_connections: int | None = None) -> LoadPlan:
    """Spread ``connections`` over client processes and source addresses.

    Args:
        connections: Connections to hold at once.
        workers: Server worker processes.
        nginx: Whether nginx sits in front (it holds two descriptors per connection).
        max_connections: The workers' admission limit, to warn when the run exceeds it.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_proc_cap = max(1, hard - FD_SLACK)
    processes = max(math.ceil(connections / per_proc_cap),
                    min(4, math.ceil(connections / PER_CLIENT_PROCESS)), 1)
    base, extra = divmod(connections, processes)
    per_process = [base + (1 if i < extra else 0) for i in range(processes)]
    ports = ephemeral_ports()
    usable = int(ports * 0.9)
    n_addr = max(math.ceil(connections / usable), 16 if nginx else 1)
    problems: list[str] = []
    if n_addr > 250:
        problems.append(f"{connections} connections need {n_addr} source addresses of "
                        f"{usable} ports each; 127.0.0.2-251 gives 250")
    addresses = [f"127.0.0.{2 + i}" for i in range(min(n_addr, 250))]
    per_worker = math.ceil(connections / workers * (BALANCE_SLACK if workers > 1 else 1))
    if per_worker + FD_SLACK > hard:
        problems.append(f"each worker would hold about {per_worker} connections, but a process "
                        f"may open at most {hard} files (hard RLIMIT_NOFILE); use at least "
                        f"{math.ceil(connections * BALANCE_SLACK / (hard - FD_SLACK))} workers")
    if nginx and 2 * connections + 2 * FD_SLACK > hard:
        # nginx's workers run unprivileged and cannot raise their limit past the hard one;
        # accept() may hand one worker most of the connections.
        problems.append(f"nginx holds two descriptors per connection ({2 * connections}) and "
                        f"one nginx worker may get them all, but a process may open at most "
                        f"{hard} files; through nginx use at most "
                        f"{(hard - 2 * FD_SLACK) // 2} connections")
    if max_connections is not None and connections > max_connections * workers:
        problems.append(f"{connections} connections exceed scaling.max_connections "
                        f"({max_connections}) x {workers} worker(s); the rest would be queued "
                        "or refused with 1013 (use the storm mode to measure that)")
    return LoadPlan(connections, workers, processes, per_process, addresses, hard, ports,
                    problems)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int) -> None:
    """Raise a clear error if something already listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise WslabError(f"port {port} on 127.0.0.1 is already in use ({exc.strerror}); "
                             "pick another with --port or leave it 0") from None


def free_port_block(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports free right now."""
    for _ in range(attempts):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            for p in range(base, base + count):
                check_port_free(p)
        except WslabError:
            continue
        return base
    raise WslabError(f"no block of {count} consecutive free loopback ports found")


def need_binary(name: str, package: str) -> str:
    """The path of a program, or a clear error naming the OS package to install."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/usr/local/bin")
         if (p := Path(d) / name).exists()), None)
    if found is None:
        raise WslabError(f"{name} is not installed; install the {package} package "
                         f"(apt-get install {package})")
    return found


class Child:
    """A child process in its own process group, spoken to in JSON lines.

    Args:
        cmd: The command line.
        what: A name for error messages.
        cwd: Working directory.
        death_signal: What the child gets if this process dies (SIGTERM lets redis-server
            and nginx shut down cleanly; wslab's own roles take SIGKILL: nobody is left to
            read what a clean stop would report).
    """

    def __init__(self, cmd: list[str], what: str, cwd: Path | None = None,
                 death_signal: int = signal.SIGTERM) -> None:
        self.what = what
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[str] = lifeline.popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=cwd, start_new_session=True, death_signal=death_signal)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        """Still running?"""
        return self.proc.poll() is None

    def _error_tail(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "no output"
        lines = [ln for ln in self.proc.stderr.read().strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.proc.returncode}"

    def readline(self, timeout: float) -> str:
        """The next line of output (raises if the process ends or stays silent)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WslabError(f"{self.what} said nothing for {timeout:.0f} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.5))
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    return line.strip()
                self.proc.wait(5)
                raise WslabError(f"{self.what} stopped: {self._error_tail()}")

    def read_json(self, timeout: float) -> dict[str, Any]:
        """The next line, parsed."""
        line = self.readline(timeout)
        try:
            value = json.loads(line)
        except ValueError:
            raise WslabError(f"{self.what} printed {line[:200]!r}, not JSON") from None
        if isinstance(value, dict) and value.get("error"):
            raise WslabError(f"{self.what}: {value['error']}")
        return value if isinstance(value, dict) else {"value": value}

    def ask(self, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and read one answer."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WslabError(f"{self.what} is gone (exit code {self.proc.poll()})") from None
        return self.read_json(timeout)

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the process group if the process still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process group, wait, then kill it; the exit code."""
        if self.proc.poll() is None:
            self.send(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # anything the child left behind
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return self.proc.returncode


def stop_children(children: list[Child], timeout: float) -> None:
    """Signal every child's group at once, wait for all until one deadline, then SIGKILL
    the groups left (an error stopping one does not keep the others running)."""
    for child in children:
        with contextlib.suppress(Exception):
            child.send()
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(Exception):
            child.stop(timeout=max(0.0, deadline - time.monotonic()))


def python_child(args: list[str], what: str) -> Child:
    """A ``python -m wslab.harness.procs ...`` child."""
    return Child([sys.executable, "-m", "wslab.harness.procs", *args], what,
                 death_signal=signal.SIGKILL)


class RedisServer:
    """A private redis-server on a free loopback port: no persistence, stopped by :meth:`stop`.

    Args:
        workdir: Directory for its (empty) working files.
        start_timeout: Longest wait for it to answer PING.
        port: Port to listen on (0: a free one); give the port of a stopped one to
            restart Redis where its clients expect it.
    """

    def __init__(self, workdir: Path, start_timeout: float = 10.0, port: int = 0) -> None:
        binary = need_binary("redis-server", "redis-server")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child = Child([binary, "--port", str(self.port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--daemonize", "no",
                            "--dir", str(workdir), "--maxclients", "1000",
                            "--loglevel", "warning"], "redis-server")
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise WslabError(f"redis-server did not start: {self.child._error_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise WslabError(f"redis-server did not answer on port {self.port} in {start_timeout} s")

    def stop(self) -> None:
        """Stop it."""
        self.child.stop(timeout=5)

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would: clients see their sockets reset."""
        self.child.stop(timeout=5, sig=signal.SIGKILL)


class NginxFront:
    """nginx in front of the workers, from ``render_nginx``, in a private prefix.

    Args:
        config: The tuning config (heartbeat, ``workers``, ``max_connections`` size it).
        upstream_port: First worker port (workers on consecutive ports).
        prefix: A private directory for its config, logs, pid and temp files.
        connections: Client connections the run will hold (sizes worker_connections).
        workers: Backends on ``upstream_port`` .. ``upstream_port + workers - 1``.
    """

    def __init__(self, config: TuningConfig, upstream_port: int, prefix: Path,
                 connections: int, workers: int, start_timeout: float = 10.0) -> None:
        from wslab.tune.export import render_nginx

        binary = need_binary("nginx", "nginx")
        self.port = free_port()
        sized = config.updated({"scaling.workers": workers, "scaling.max_connections": max(
            connections, config.scaling.max_connections)})
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        (prefix / "temp").mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(render_nginx(sized, upstream_port=upstream_port,
                                     listen_port=self.port)["nginx.conf"])
        base = [binary, "-p", str(prefix), "-c", str(conf), "-e",
                str(prefix / "logs" / "error.log")]
        self.conf = conf
        self._base = base
        check = lifeline.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise WslabError(f"nginx rejected the generated config: {last}")
        self.child = Child([*base, "-g", "daemon off;"], "nginx", cwd=prefix)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise WslabError(f"nginx did not start: {self.child._error_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise WslabError(f"nginx did not listen on port {self.port} in {start_timeout} s")

    def workers(self) -> dict[int, bool]:
        """nginx's worker processes now: pid -> whether it is shutting down (after a reload)."""
        import psutil

        out: dict[int, bool] = {}
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.pid).children():
                with contextlib.suppress(psutil.Error):
                    title = " ".join(proc.cmdline())
                    if "worker process" in title:
                        out[proc.pid] = "shutting down" in title
        return out

    @property
    def pid(self) -> int:
        """The master process."""
        return self.child.pid

    def reload(self, main_directives: list[str] | None = None,
               timeout: float = 10.0) -> dict[str, list[int]]:
        """``nginx -s reload`` with the private prefix, optionally adding main-context lines.

        Returns once the master runs as many fresh workers as before and every old one
        has exited or says it is shutting down. Old workers finish
        gracefully: they stop accepting, and an upgraded (WebSocket) connection keeps
        them alive until it closes, unless ``worker_shutdown_timeout`` closes it first.

        Args:
            main_directives: Lines to add at the top of ``nginx.conf`` first, e.g.
                ``["worker_shutdown_timeout 1s;"]``.
            timeout: Longest wait for the new workers.

        Returns:
            ``{"old": [...], "new": [...]}`` worker pids.

        Raises:
            WslabError: nginx refused the config or the signal, or no new workers came up.
        """
        before = self.workers()
        active = [p for p, leaving in before.items() if not leaving]
        if main_directives:
            self.conf.write_text("\n".join(main_directives) + "\n" + self.conf.read_text())
        done = lifeline.run([*self._base, "-s", "reload"], capture_output=True, text=True,
                            timeout=30)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise WslabError(f"nginx -s reload failed: {last}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.workers()
            fresh = [p for p, leaving in now.items() if not leaving and p not in before]
            told = all(now.get(p, True) for p in before)  # old ones gone or shutting down
            if active and len(fresh) >= len(active) and told:
                return {"old": sorted(before), "new": sorted(fresh)}
            time.sleep(0.05)
        raise WslabError(f"nginx did not start new workers within {timeout:g} s of a reload")

    def stop(self) -> None:
        """Fast shutdown (SIGTERM), then kill."""
        self.child.stop(timeout=10)
