"""Children that die with wslab, however wslab is stopped (Ctrl-C, SIGTERM or SIGKILL).

What lives here, used everywhere wslab starts a process:

- :func:`popen`, :func:`run` and :func:`call`: ``subprocess`` with the child tied to this
  process. On Linux the child asks the kernel, between fork and exec, for a signal when
  its parent dies (``prctl(PR_SET_PDEATHSIG)``, kept across exec, so it holds for any
  program: redis-server, nginx, jupyter and wslab's own roles), then checks that its
  parent is still the process that started it (the parent may have died before the
  request). The kernel sends the signal when the *thread* that forked exits: start
  children from the main thread or a thread that outlives them (every caller in wslab
  stops its children before the call that started them returns).
- :func:`process_pool`: a ``ProcessPoolExecutor`` whose workers die with the parent and
  ignore SIGINT, and which, when the block ends in an exception (Ctrl-C), cancels what is
  queued and terminates its workers instead of waiting for every queued task.
- :func:`stop_all`: SIGTERM to several processes at once, one shared deadline, then SIGKILL.
- :func:`stop_signals`: the command line's handlers. SIGINT raises ``KeyboardInterrupt``
  even when the process was started with SIGINT ignored (a script's background job is,
  and ``wslab bench`` then ran to its end instead of stopping); SIGTERM and SIGHUP raise
  :class:`Terminated` (a ``KeyboardInterrupt``), so every ``finally`` that stops children
  runs. A request whose exception Python swallowed (it fired inside a finalizer or an
  at-fork hook) is sent again.

The signal a dying parent sends is SIGTERM by default: redis-server and nginx shut down on
it (nginx's master stops its own workers; killed, it would leave them running). wslab's own
roles (servers, clients, shaper, workers, holders) and pool workers take SIGKILL: nobody is
left to read what a clean stop would report, and they go at once however busy they are.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

INTERRUPT_GRACE_S = 2.0
"""After Ctrl-C or SIGTERM: how long a child may take to exit on its own before SIGKILL."""

RESEND_AFTER_S = 0.05
"""A stop signal whose exception landed where Python ignores exceptions is sent again after
this long (see :func:`stop_signals`)."""

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_prctl = _load_prctl()  # looked up before any fork: the child only calls it


def tie_to_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """In a child: get ``sig`` when the parent dies; die at once if ``parent`` already has.

    Args:
        parent: The pid of the process that started this one.
        sig: The signal the kernel sends when the parent (thread) exits.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:  # orphaned before the request: nobody would signal us
        os.kill(os.getpid(), signal.SIGKILL)


def _preexec(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:
        tie_to_parent(parent, sig)

    return preexec


def popen(cmd: Sequence[str], *, death_signal: int = signal.SIGTERM,
          **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(cmd, **kwargs)`` whose child gets ``death_signal`` when we die."""
    return subprocess.Popen(cmd, preexec_fn=_preexec(death_signal), **kwargs)


def run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` with the child tied to this process (see :func:`popen`)."""
    return subprocess.run(cmd, preexec_fn=_preexec(signal.SIGTERM), **kwargs)


def call(cmd: Sequence[str], grace: float = INTERRUPT_GRACE_S, **kwargs: Any) -> int:
    """Run ``cmd`` to its end and return its exit code; on Ctrl-C or an error, stop it
    (SIGTERM, ``grace`` seconds, SIGKILL) before re-raising."""
    proc = popen(cmd, **kwargs)
    try:
        return proc.wait()
    except BaseException:
        stop_all([proc], grace)
        raise


def stop_all(procs: Iterable[subprocess.Popen[Any] | None],
             grace: float = INTERRUPT_GRACE_S) -> None:
    """SIGTERM every process still running, wait until one shared deadline, SIGKILL the rest.

    Returns once every one of them has exited (and is reaped).
    """
    live = [p for p in procs if p is not None and p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pool_worker_init(parent: int, initializer: Callable[..., object] | None,
                      initargs: tuple[Any, ...]) -> None:
    # The worker's parent is the pool's process (fork, spawn) or the forkserver, which
    # exits when the pool's process does; a worker holds nothing worth a clean exit.
    tie_to_parent(os.getppid(), signal.SIGKILL)
    if not _alive(parent):
        os.kill(os.getpid(), signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; no traceback each
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def process_pool(max_workers: int, initializer: Callable[..., object] | None = None,
                 initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` that dies with us and is abandoned on an exception.

    On a normal exit the pool shuts down as usual (waiting for its work). If the block
    raises (Ctrl-C, SIGTERM, an error), queued work is cancelled and the workers are
    terminated at once, so the exception propagates without running the rest.
    """
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=max_workers, initializer=_pool_worker_init,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
        pool.shutdown(wait=True)
    except BaseException:
        workers = list((pool._processes or {}).values())  # the pool offers no public handle
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.terminate()
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so cleanup runs as it does on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class StopRequest:
    """Which stop signal arrived while :func:`stop_signals` was active (None: none)."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for Ctrl-C)."""
        return 128 + (self.signum or signal.SIGINT)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """While the block runs: SIGINT raises KeyboardInterrupt (even if it was ignored),
    SIGTERM and SIGHUP raise :class:`Terminated` (SIGHUP left ignored under ``nohup``).
    Yields the :class:`StopRequest` that records the signal. Outside the main thread
    nothing changes (only it may set handlers)."""
    got = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def terminate(signum: int, _frame: Any) -> None:
        got.signum = signum
        raise Terminated(signum)

    # SIGINT's handler is default_int_handler itself, so asyncio.run keeps its own Ctrl-C
    # handling (cancel the main task, then raise) inside event loops; SIGINT then goes
    # unrecorded, and a KeyboardInterrupt without a record is a Ctrl-C.
    wanted: dict[int, Any] = {signal.SIGINT: signal.default_int_handler,
                              signal.SIGTERM: terminate, signal.SIGHUP: terminate}
    previous: dict[int, Any] = {}
    for sig, handler in wanted.items():
        old = signal.getsignal(sig)
        if sig == signal.SIGHUP and old == signal.SIG_IGN:
            continue  # started with nohup: the user asked it to outlive the terminal
        previous[sig] = signal.SIG_DFL if old is None else old
        signal.signal(sig, handler)

    # Python runs a signal handler at the next bytecode it checks, which may be inside a
    # finalizer or an at-fork hook (a fork of subprocess or a process pool): there the
    # exception is "ignored" and the stop request would be lost. It is sent again instead,
    # a moment later, when the main thread is back in ordinary code.
    unraisable = sys.unraisablehook

    def resend(info: Any) -> None:
        exc = info.exc_value
        if not isinstance(exc, KeyboardInterrupt):
            unraisable(info)
            return
        sig = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        threading.Timer(RESEND_AFTER_S, os.kill, (os.getpid(), sig)).start()

    sys.unraisablehook = resend
    try:
        yield got
    finally:
        sys.unraisablehook = unraisable
        for sig, old in previous.items():
            signal.signal(sig, old)
