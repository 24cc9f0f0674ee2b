"""The Dask task of ``wslab scale --cluster``: a holder on a worker, its lines relayed home.

What lives here: :class:`HolderSpec` (what one remote holder is to open) and
:func:`run_holder`, the function a Dask worker runs for it. The task starts the very same
``python -m wslab.harness.procs holder`` process a local run starts, but only once told:
it connects to the coordinator's TCP listener, sends one ``hello`` line saying who it is
(token, holder number, host, the Dask worker's address and pid), answers ``clock`` with
this host's ``time.monotonic()`` (the clock the holder will stamp receipts on) until
``start``; then it starts the holder (tied to the task's process by ``lifeline``, so it
dies with the Dask worker), answers with its pid, and copies bytes both ways: socket to
the holder's stdin, the holder's stdout to the socket. The coordinator thus speaks the
JSON-lines protocol of ``commands.py`` to a remote holder exactly as to a local one.
What must not live here: the coordinator's side (``scale_dask.py``), what a holder does
(``scale_roles.py``, ``holder.py``).

How it ends:

| event                                   | the task does                                 |
|-----------------------------------------|-----------------------------------------------|
| the holder exits (``close``, an error)  | shuts its socket, returns exit code and stderr |
| the coordinator hangs up or is killed   | SIGTERM to the holder's group, SIGKILL after  |
|                                         | ``STOP_GRACE_S``; returns                      |
| the Dask worker process dies            | the kernel kills the holder (``lifeline``)    |
| the coordinator cannot be reached       | fails within ``CONNECT_TIMEOUT_S``, no holder |
| no ``start`` within ``START_TIMEOUT_S`` | returns; no holder was started                |
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
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wslab.harness import commands as c
from wslab.harness import lifeline

CONNECT_TIMEOUT_S = 20.0
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 5.0
CHUNK = 1 << 16


@dataclass(frozen=True)
class HolderSpec:
    """One remote holder: its number, target, share of connections and source addresses."""

    index: int
    url: str
    config_yaml: str  # the client's TuningConfig as YAML (no shared disk assumed)
    connections: int
    rate: float = 0.0
    sources: list[str] = field(default_factory=list)

    def args(self, config_path: Path) -> list[str]:
        """The ``procs holder`` command line."""
        out = ["holder", "--url", self.url, "--config", str(config_path), "--connections",
               str(self.connections), "--prefix", f"h{self.index}", "--rate", str(self.rate)]
        for address in self.sources:
            out += ["--source", address]
        return out


def _down(sock: socket.socket, stdin: Any) -> None:
    """Coordinator to holder, until either side is gone; then the holder's stdin closes."""
    try:
        while data := sock.recv(CHUNK):
            stdin.write(data)
            stdin.flush()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _up(fd: int, sock: socket.socket) -> None:
    """Holder to coordinator, until the holder's stdout ends; then our side of the socket."""
    try:
        while data := os.read(fd, CHUNK):
            sock.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # run outside a Dask worker (a test, a thread)
        return None


def _send(sock: socket.socket, answer: dict[str, Any]) -> None:
    sock.sendall((json.dumps(answer) + "\n").encode())


def _await_start(sock: socket.socket) -> bytes | None:
    """Answer ``clock`` until ``start``; the bytes that came after it (None: the
    coordinator hung up or never said ``start``)."""
    sock.settimeout(START_TIMEOUT_S)
    buffer = b""
    try:
        while True:
            while b"\n" not in buffer:
                chunk = sock.recv(CHUNK)
                if not chunk:
                    return None
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            try:
                cmd = c.parse_command(line)
            except c.CommandError as exc:
                _send(sock, {"error": str(exc)})
                continue
            if isinstance(cmd, c.Start):
                return buffer
            if isinstance(cmd, c.Clock):
                _send(sock, dict(c.Clocked(t=time.monotonic())))
            else:
                _send(sock, {"error": f"the holder is not started yet: {cmd.cmd.value!r}"})
    except (TimeoutError, OSError):
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


def run_holder(coordinator: tuple[str, int], token: str, spec: HolderSpec) -> dict[str, Any]:
    """Say hello to ``coordinator``, answer its clock until ``start``, then run one holder
    here with its command channel relayed there, until the holder ends or the coordinator
    hangs up; the holder's exit code and the end of its stderr."""
    folder = Path(tempfile.mkdtemp(prefix="wslab-holder-"))
    try:
        config = folder / "client.yaml"
        config.write_text(spec.config_yaml)
        sock = socket.create_connection(coordinator, timeout=CONNECT_TIMEOUT_S)
        with sock, open(folder / "stderr", "w+b") as err:
            _send(sock, {"hello": token, "index": spec.index, "host": socket.gethostname(),
                         "worker": _worker_address(), "worker_pid": os.getpid(),
                         "connections": spec.connections, "sources": spec.sources})
            early = _await_start(sock)
            if early is None:
                return {"exit_code": None, "stderr": "not started: the coordinator left"}
            proc = lifeline.popen(
                [sys.executable, "-m", "wslab.harness.procs", *spec.args(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                death_signal=signal.SIGKILL)
            try:
                _send(sock, dict(c.Started(ok=True, pid=proc.pid)))
                return _relay(sock, proc, early, err)
            finally:
                _stop(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _relay(sock: socket.socket, proc: subprocess.Popen[bytes], early: bytes,
           err: Any) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    if early:  # what the coordinator sent right after ``start``
        proc.stdin.write(early)
        proc.stdin.flush()
    down = threading.Thread(target=_down, args=(sock, proc.stdin), daemon=True,
                            name="wslab-relay-down")
    up = threading.Thread(target=_up, args=(proc.stdout.fileno(), sock), daemon=True,
                          name="wslab-relay-up")
    down.start()
    up.start()
    while proc.poll() is None and down.is_alive():
        down.join(0.2)
    if proc.poll() is None:  # the coordinator hung up first: nobody is left to ask
        _stop(proc)
    up.join(STOP_GRACE_S)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes the other thread's recv
    down.join(1.0)
    err.seek(0)
    lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
    return {"exit_code": proc.poll(), "stderr": lines[-1] if lines else ""}
