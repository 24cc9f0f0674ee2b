"""The processes of a scale run: workers, load holders, a private redis-server, nginx.

What lives here: :class:`Channel` (a peer spoken to in JSON lines: ``ask``,
``read_json``), :class:`Child` (a child process spoken to in JSON lines over
stdin/stdout, tied to this process by ``lifeline`` so it dies with it even on SIGKILL,
stopped with its whole process group; :func:`stop_children` stops several at once,
:func:`python_child` starts one of wslab's own roles), :func:`need_binary`,
:class:`RedisServer` (a private ``redis-server`` on a free loopback port, no persistence)
and :class:`NginxFront` (nginx from a config its caller rendered, in a private prefix
directory). Commands are written as ``commands.py`` encodes them.
What must not live here: planning against the machine's limits and finding free ports
(``loadplan.py``; :func:`plan_load`, :class:`LoadPlan`, the limits and the port helpers are
re-exported here), the run itself (``scale.py``), the worker's and holder's insides
(``procs.py``, ``registry.py``, ``client.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wslab.errors import WslabError
from wslab.harness import lifeline
from wslab.harness.commands import Command, encode
from wslab.harness.linepipe import LinePipe
from wslab.harness.loadplan import BALANCE_SLACK as BALANCE_SLACK  # re-exported
from wslab.harness.loadplan import FD_SLACK as FD_SLACK
from wslab.harness.loadplan import PER_CLIENT_PROCESS as PER_CLIENT_PROCESS
from wslab.harness.loadplan import LoadPlan as LoadPlan
from wslab.harness.loadplan import check_port_free as check_port_free
from wslab.harness.loadplan import ephemeral_ports as ephemeral_ports
from wslab.harness.loadplan import free_port as free_port
from wslab.harness.loadplan import free_port_block as free_port_block
from wslab.harness.loadplan import plan_load as plan_load
from wslab.harness.loadplan import raise_nofile as raise_nofile


def need_binary(name: str, package: str) -> str:
    """The path of a program, or a clear error naming the OS package to install."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/usr/local/bin")
         if (p := Path(d) / name).exists()), None)
    if found is None:
        raise WslabError(f"{name} is not installed; install the {package} package "
                         f"(apt-get install {package})")
    return found


class Channel:
    """Something spoken to in JSON lines (``commands.py``): a :class:`Child` over its pipes,
    or a holder on another machine over a socket (``scale_dask.py``); a run treats both
    alike. Subclasses say how a line is read and written, and how the peer is stopped."""

    what: str
    pid: int

    def readline(self, timeout: float) -> str:
        """The next line (raises :class:`WslabError` if the peer ends or stays silent)."""
        raise NotImplementedError

    def _write(self, line: str) -> None:
        """Write one line (with its newline); raise ``OSError`` if the peer is gone."""
        raise NotImplementedError

    def alive(self) -> bool:
        """Still there?"""
        raise NotImplementedError

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Ask the peer to stop, without waiting."""
        raise NotImplementedError

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """Stop the peer, waiting up to ``timeout``; its exit code if known."""
        raise NotImplementedError

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

    def ask(self, command: Command, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and read one answer (an ``error`` answer raises)."""
        try:
            self._write(encode(command) + "\n")
        except OSError:
            raise WslabError(f"{self.what} is gone{self._gone()}") from None
        return self.read_json(timeout)

    def _gone(self) -> str:
        """What to add to "is gone" (a process's exit code)."""
        return ""


class Child(Channel):
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
        assert self.proc.stdout is not None
        self._stdout = LinePipe(self.proc.stdout)  # the only reader of the child's lines

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
        try:
            line = self._stdout.readline(timeout)
        except TimeoutError:
            raise WslabError(f"{self.what} said nothing for {timeout:.0f} s") from None
        if line is None:
            self.proc.wait(5)
            raise WslabError(f"{self.what} stopped: {self._error_tail()}")
        return line.strip()

    def _gone(self) -> str:
        return f" (exit code {self.proc.poll()})"

    def _write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

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


def stop_children(children: Sequence[Channel], timeout: float) -> None:
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
    """nginx from a rendered ``nginx.conf``, in a private prefix.

    Args:
        conf_text: The whole ``nginx.conf``, rendered by the caller (``wslab scale`` uses
            the exporter's ``render_nginx``); it must listen on ``port``.
        port: The loopback port the config listens on (checked to accept connections).
        prefix: A private directory for its config, logs, pid and temp files.
        start_timeout: Longest wait for it to listen.
    """

    def __init__(self, conf_text: str, port: int, prefix: Path,
                 start_timeout: float = 10.0) -> None:
        binary = need_binary("nginx", "nginx")
        self.port = port
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        (prefix / "temp").mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(conf_text)
        base = [binary, "-p", str(prefix), "-c", str(conf), "-e",
                str(prefix / "logs" / "error.log")]
        self.conf = conf
        self._base = base
        check = lifeline.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            last = (check.stderr.strip().splitlines() or ["no output"])[-1]
            raise WslabError(f"nginx rejected the config: {last}")
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
