"""Adaptive vs always simulation cost in CPU instructions (valgrind's callgrind), not seconds.

Why beside ``bench_sim``. The issue-13 target (adaptive simulation at most 1.1x ``always``)
sits a few per cent from the measured ratio, while one run's wall time on a shared 2-core VM
swings by +-25 %: a row can miss in one run and pass in the next. Callgrind counts the
instructions the interpreter executes, which do not depend on the machine's load, so the
same code gives the same figure on any run.

How. For each trace and policy the child process below is run under callgrind twice: once
simulating the trace once, once three times. Imports and reading the trace cost the same in
both, so (three - one) / 2 is the instruction count of one simulation. The ratio is
adaptive's count over always's.

Usage: ``python benchmarks/instructions_adaptive.py [trace ...]`` (default: game sensor,
the two bundled traces whose wall-time ratio lies nearest the target). Prints a markdown
table; needs ``valgrind`` (``apt-get install valgrind``). Each run takes minutes: the
interpreter runs about 50x slower under callgrind.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
from wslab.config import TuningConfig
from wslab.sim import simulate
from wslab.traces.io import read_trace
trace = read_trace(sys.argv[1])
config = TuningConfig().updated({"compression.policy": sys.argv[2]})
for _ in range(int(sys.argv[3])):
    simulate(trace, config, link="4g")
"""
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def instructions(trace: Path, policy: str, times: int) -> int:
    """Instructions callgrind counts for the child simulating ``trace`` ``times`` times."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", CHILD, str(trace), policy, str(times)],
        capture_output=True, text=True, cwd=ROOT, check=True)
    found = COLLECTED.search(done.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no instruction count for {trace.name} {policy}")
    return int(found.group(1))


def per_simulation(trace: Path, policy: str) -> float:
    return (instructions(trace, policy, 3) - instructions(trace, policy, 1)) / 2


def main(names: list[str]) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    print("| trace | always (M instructions / simulation) | adaptive | adaptive / always |")
    print("|---|---:|---:|---:|")
    for name in names:
        path = ROOT / "data" / f"{name}.jsonl.zst"
        if not path.exists():
            raise SystemExit(f"no bundled trace {name!r} (looked for {path})")
        always = per_simulation(path, "always")
        adaptive = per_simulation(path, "adaptive")
        print(f"| {name} | {always / 1e6:,.1f} | {adaptive / 1e6:,.1f} | "
              f"{adaptive / always:.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["game", "sensor"])
