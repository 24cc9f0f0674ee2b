"""Dask as the engine beyond one machine: which cluster, a client to it, files on workers.

What lives here: :func:`parse_cluster` (``local`` or a scheduler address, checked before
any work), :func:`dask_session` (a ``LocalCluster`` on loopback started and stopped with
the caller, or a client of a running scheduler; the dashboard's link and the workers'
count), and :class:`FileOnWorkers`, a worker plugin that carries one file to every worker
once -- also to a worker that joins later -- and hands its path to an initializer there.
What must not live here: what the workers compute (the sweep, the holders: the layers
above submit their own functions) or any printing.

Dask is optional: without ``distributed`` installed, asking for a cluster fails in one
line that names what to install. Workers of a ``LocalCluster`` watch their parent and
exit when it dies (checked: the parent killed with SIGKILL leaves no worker behind), and
the cluster is closed on every way out of :func:`dask_session`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wslab.errors import WslabError

try:  # optional dependency: the plugin's base exists only where Dask does
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # pragma: no cover - without Dask, _distributed() fails before use
    _PluginBase = object  # type: ignore[assignment,misc]

INSTALL = "pip install 'dask[distributed]'"
CONNECT_TIMEOUT_S = 10.0
LOCAL = "local"
SCHEMES = ("tcp", "tls")
"""Scheduler addresses Dask's own comms take (``inproc`` and ``ucx`` are left out: the
first cannot be reached from a command line, the second needs hardware we do not test)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where work goes: a ``LocalCluster`` (``address`` None) or a running scheduler."""

    address: str | None

    @property
    def local(self) -> bool:
        return self.address is None


def parse_cluster(text: str) -> ClusterSpec:
    """``local`` or ``tcp://HOST:PORT`` (also ``tls://``); anything else fails, saying why."""
    if text.strip().lower() == LOCAL:
        return ClusterSpec(None)
    parts = urlsplit(text.strip())
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise WslabError(f"--cluster {text!r}: expected 'local' or a Dask scheduler address "
                         "such as tcp://127.0.0.1:8786")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise WslabError(f"--cluster {text!r}: the scheduler address needs a port "
                         "(Dask's default is 8786)")
    return ClusterSpec(f"{parts.scheme}://{parts.hostname}:{port}")


@dataclass
class DaskSession:
    """A connected client, where its dashboard is, and how many workers it had at the start."""

    client: Any  # distributed.Client (optional dependency: typed loosely)
    dashboard_link: str | None
    workers: int


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise WslabError(f"--cluster needs Dask distributed, which is not installed: "
                         f"run {INSTALL}") from None
    # Dask logs every worker's start and stop at INFO and some shutdown races at WARNING;
    # what the user asked for is reported by the caller.
    for name in ("distributed", "distributed.nanny", "distributed.scheduler",
                 "distributed.worker", "distributed.core", "distributed.comm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return distributed


def _check_answers(address: str, timeout: float) -> None:
    """Fail in one line unless a Dask scheduler at ``address`` answers within ``timeout``.

    ``distributed.Client`` bounds the TCP connect but not Dask's own handshake after it: a
    port that accepts and then says nothing (not a scheduler, or a frozen one) would hold
    it forever. This opens one comm, asks the scheduler who it is, all under one deadline,
    on a thread of its own (the caller may be inside a running event loop: a notebook).
    """
    import asyncio
    import threading

    async def ask() -> Any:
        from distributed.comm.core import connect

        comm = await connect(address, timeout=timeout)  # type: ignore[no-untyped-call]
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    outcome: list[BaseException | Any] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(asyncio.wait_for(ask(), timeout)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    thread = threading.Thread(target=run, name="wslab-dask-check", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)
    answer = outcome[0] if outcome else TimeoutError()
    if isinstance(answer, BaseException):
        reason = "no answer" if isinstance(answer, TimeoutError) else str(answer) or \
            type(answer).__name__
        raise WslabError(f"--cluster {address}: no Dask scheduler answered within "
                         f"{timeout:g} s ({reason})")
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise WslabError(f"--cluster {address}: what answered is not a Dask scheduler "
                         f"({str(answer)[:80]})")


@contextlib.contextmanager
def dask_session(spec: ClusterSpec, workers: int | None = None) -> Iterator[DaskSession]:
    """A client of the cluster ``spec`` names, closed (and a local cluster stopped) on exit.

    Args:
        spec: From :func:`parse_cluster`.
        workers: Worker processes of a local cluster (default: every core), one thread
            each (the work is CPU bound Python). Ignored for a running scheduler, whose
            workers are whatever joined it; it must have at least one.
    """
    distributed = _distributed()
    cluster = None
    try:
        if spec.local:
            import dask

            # The workers' sampling profiler walks the running task's stack every 10 ms
            # under the interpreter lock: on CPU-bound Python (a sweep) it cost 10 % of
            # the wall time here (bench_sweep_cluster, quick: 1.17x -> 1.07x the pool).
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                cluster = distributed.LocalCluster(
                    n_workers=max(1, workers or os.cpu_count() or 1), threads_per_worker=1,
                    processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR)
            client = distributed.Client(cluster, set_as_default=False)
        else:
            assert spec.address is not None
            _check_answers(spec.address, CONNECT_TIMEOUT_S)
            try:
                client = distributed.Client(spec.address, timeout=CONNECT_TIMEOUT_S,
                                            set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise WslabError(f"--cluster {spec.address}: no Dask scheduler answered "
                                 f"within {CONNECT_TIMEOUT_S:g} s ({exc})") from None
        try:
            count = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            if count == 0:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
                count = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        except TimeoutError:
            client.close()
            raise WslabError(f"--cluster {spec.address}: the scheduler has no workers "
                             f"(none joined within {CONNECT_TIMEOUT_S:g} s)") from None
        try:
            yield DaskSession(client, getattr(client, "dashboard_link", None), count)
        finally:
            with contextlib.suppress(Exception):
                client.close()
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()


class FileOnWorkers(_PluginBase):
    """A Dask worker plugin: one file's bytes written on every worker, then ``init(path, *args)``.

    The bytes travel once per worker, inside the plugin, and not once per task; a worker
    that joins after registration gets them too. The file keeps its name (its suffix
    says how to read it) in a folder of the worker's own local directory.
    """

    def __init__(self, name: str, data: bytes, init: Callable[..., object],
                 args: tuple[Any, ...] = (),
                 release: Callable[..., object] | None = None) -> None:
        self.name = Path(name).name
        self.data = data
        self.init = init
        self.args = args
        self.release = release  # called with ``args`` when the plugin is removed

    def setup(self, worker: Any) -> None:
        folder = Path(worker.local_directory) / "wslab-files"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.name
        path.write_bytes(self.data)
        self.init(str(path), *self.args)

    def teardown(self, worker: Any) -> None:
        if self.release is not None:
            self.release(*self.args)
        with contextlib.suppress(OSError):
            (Path(worker.local_directory) / "wslab-files" / self.name).unlink()


@contextlib.contextmanager
def file_on_workers(session: DaskSession, plugin: FileOnWorkers, key: str) -> Iterator[None]:
    """``plugin`` registered under ``key`` for the block, removed after it (its file and
    what ``release`` frees go with it, so a shared cluster does not keep every trace)."""
    session.client.register_plugin(plugin, name=key)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            session.client.unregister_worker_plugin(key)
