"""``wslab.harness.lifeline``: children die with their parent, however it dies.

Each test starts a real parent process that starts real children through lifeline, kills
the parent with SIGKILL (nothing of it can run any more: no ``finally``, no handler) and
checks with psutil that the children are gone too.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from wslab.harness import lifeline

GONE_WITHIN_S = 5.0  # the promise of issue 14: nothing survives wslab by more than this


def alive(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after ``timeout`` s (a zombie has exited: an
    orphan may wait for a reaper that never comes in a container)."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def parent_printing_pids(body: str) -> tuple[subprocess.Popen[str], list[int]]:
    """Run ``body`` in a parent process; it prints a JSON list of child pids, then waits."""
    script = textwrap.dedent(body) + "\nimport time\ntime.sleep(120)\n"
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, "the parent printed no pids"
    return parent, json.loads(line)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


@pytest.mark.parametrize("death_signal", [signal.SIGTERM, signal.SIGKILL])
def test_children_die_when_the_parent_is_killed(death_signal: int) -> None:
    parent, pids = parent_printing_pids(f"""
        import json, sys
        from wslab.harness import lifeline
        kids = [lifeline.popen(["sleep", "600"], death_signal={death_signal}),
                lifeline.popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               death_signal={death_signal}, start_new_session=True)]
        print(json.dumps([k.pid for k in kids]), flush=True)
    """)
    children = [psutil.Process(pid) for pid in pids]
    try:
        assert len(alive(children, 0)) == 2  # both running before the parent dies
        parent.kill()
        parent.wait(5)
        left = alive(children, GONE_WITHIN_S)
        assert not left, [p.cmdline() for p in left]
    finally:
        kill_all(pids)


def test_a_child_whose_parent_died_before_it_asked_kills_itself() -> None:
    # The race: the parent dies between fork and prctl, so no signal would ever come. The
    # child sees a parent that is not the one that started it and ends itself.
    not_my_parent = psutil.Process().ppid()  # alive, and not the child's parent
    child = subprocess.Popen(["sleep", "60"],
                             preexec_fn=lambda: lifeline.tie_to_parent(not_my_parent))
    assert child.wait(GONE_WITHIN_S) == -signal.SIGKILL


def test_the_pool_drops_queued_work_and_its_workers_on_an_exception() -> None:
    tasks, seconds, workers = 20, 1.0, 2
    queued_s = tasks * seconds / workers
    started = time.monotonic()
    procs: list[psutil.Process] = []
    with pytest.raises(KeyboardInterrupt), lifeline.process_pool(workers) as pool:
        futures = [pool.submit(time.sleep, seconds) for _ in range(tasks)]
        futures[0].result()
        procs = [psutil.Process(p.pid) for p in pool._processes.values()]
        raise KeyboardInterrupt  # as Ctrl-C would, in the middle of the work
    elapsed = time.monotonic() - started
    assert len(procs) == workers
    assert elapsed < queued_s / 2, f"waited {elapsed:.1f} s for work that was queued"
    assert not alive(procs, 0)
    assert any(f.cancelled() for f in futures)  # what had not started never will


def test_pool_workers_die_when_the_parent_is_killed() -> None:
    parent, pids = parent_printing_pids("""
        import json, time
        from wslab.harness import lifeline
        pool_cm = lifeline.process_pool(2)  # kept: a dropped one shuts the pool down
        pool = pool_cm.__enter__()
        futures = [pool.submit(time.sleep, 600) for _ in range(2)]
        time.sleep(0.5)
        print(json.dumps([p.pid for p in pool._processes.values()]), flush=True)
    """)
    workers = [psutil.Process(pid) for pid in pids]
    try:
        assert len(workers) == 2 and not any(w.status() == psutil.STATUS_ZOMBIE
                                             for w in workers)
        parent.kill()
        parent.wait(5)
        left = alive(workers, GONE_WITHIN_S)
        assert not left, [p.pid for p in left]
    finally:
        kill_all(pids)


def test_stop_all_kills_what_ignores_sigterm_within_the_grace() -> None:
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time\nsignal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)"],
                                stdout=subprocess.PIPE, text=True)
    polite = subprocess.Popen(["sleep", "600"])
    assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "up"
    grace = 0.5
    started = time.monotonic()
    lifeline.stop_all([stubborn, None, polite], grace)
    elapsed = time.monotonic() - started
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert grace <= elapsed < grace + GONE_WITHIN_S


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_that_lands_in_a_finalizer_is_not_lost(sig: int) -> None:
    # Python ignores an exception raised inside __del__ (or an at-fork hook, as when the
    # signal arrives while a process pool forks): the request must come back, not vanish.
    script = textwrap.dedent("""
        import time
        from wslab.harness.lifeline import stop_signals

        class Slow:
            def __del__(self):
                print("finalizing", flush=True)
                time.sleep(1.0)  # the signal arrives now

        with stop_signals():
            try:
                gone = Slow()
                del gone
                time.sleep(30)
                print("never stopped", flush=True)
            except KeyboardInterrupt as exc:
                print("stopped", type(exc).__name__, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "finalizing"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=GONE_WITHIN_S)
    finally:
        proc.kill()
    expected = "KeyboardInterrupt" if sig == signal.SIGINT else "Terminated"
    assert out.strip() == f"stopped {expected}", err
    assert "Exception ignored" not in err
