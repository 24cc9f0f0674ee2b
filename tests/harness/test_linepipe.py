"""LinePipe: every line a child prints arrives, however the lines are bunched."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from wslab.errors import WslabError
from wslab.harness.cluster import Child
from wslab.harness.linepipe import LinePipe


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_lines_printed_together_all_arrive_before_the_deadline() -> None:
    # Three lines in one write, then silence: a select() on the text wrapper followed by
    # readline() got the first and then waited out the timeout for the other two.
    proc = _child("import sys, time; sys.stdout.write('a 1\\nb 2\\nc 3\\n'); "
                  "sys.stdout.flush(); time.sleep(30)")
    try:
        started = time.monotonic()
        got = LinePipe(proc.stdout).lines(3, 20.0)  # type: ignore[arg-type]
        assert got == ["a 1", "b 2", "c 3"]
        assert time.monotonic() - started < 10.0  # not by running into the deadline
    finally:
        proc.kill()
        proc.wait()


def test_partial_lines_wait_for_their_end_and_the_last_line_needs_no_newline() -> None:
    proc = _child("import sys, time; w = sys.stdout.write; f = sys.stdout.flush\n"
                  "w('hal'); f(); time.sleep(0.3); w('f\\nlast'); f()")
    try:
        pipe = LinePipe(proc.stdout)  # type: ignore[arg-type]
        assert pipe.readline(10.0) == "half"
        assert pipe.readline(10.0) == "last"
        assert pipe.readline(10.0) is None and pipe.ended
    finally:
        proc.wait()


def test_silence_is_a_timeout_that_keeps_what_was_read() -> None:
    proc = _child("import sys, time; sys.stdout.write('x'); sys.stdout.flush(); "
                  "time.sleep(1.0); sys.stdout.write('y\\n'); sys.stdout.flush()")
    try:
        pipe = LinePipe(proc.stdout)  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):
            pipe.readline(0.2)
        assert pipe.readline(10.0) == "xy"
    finally:
        proc.wait()


def test_child_reads_bunched_json_lines_and_says_when_the_child_is_silent() -> None:
    child = Child([sys.executable, "-c",
                   "import sys, time; print('{\"a\": 1}\\n{\"b\": 2}', flush=True); "
                   "time.sleep(30)"], "bunched child", death_signal=9)
    try:
        assert child.read_json(10.0) == {"a": 1}
        assert child.read_json(2.0) == {"b": 2}
        with pytest.raises(WslabError, match="bunched child said nothing"):
            child.readline(0.3)
    finally:
        child.proc.kill()
        child.proc.wait()
