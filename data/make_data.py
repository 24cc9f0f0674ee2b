"""Regenerate the bundled traces in ``data/`` from the wslab generators.

Run from the repository root::

    .venv/bin/python data/make_data.py            # writes data/*.jsonl.zst
    .venv/bin/python data/make_data.py --check    # verifies the files match, writes nothing

Each file is ``generate(kind, MESSAGES, SEED)`` written with ``write_trace(..., level=19)``.
The messages are fully determined by (kind, count, seed); the compressed bytes also depend
on the zstd library version, so ``--check`` compares decoded content, not file bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wslab.traces.generators import GENERATOR_KINDS, generate
from wslab.traces.io import read_trace, write_trace

DATA_DIR = Path(__file__).resolve().parent
MESSAGES = 20_000
SEED = 0
LEVEL = 19


def bundled_path(kind: str) -> Path:
    """Where the bundled trace of ``kind`` lives."""
    return DATA_DIR / f"{kind}.jsonl.zst"


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` verify) every bundled trace; return an exit code."""
    check = "--check" in argv
    status = 0
    for kind in GENERATOR_KINDS:
        trace = generate(kind, MESSAGES, SEED)
        path = bundled_path(kind)
        if check:
            on_disk = read_trace(path)
            same = on_disk.messages == trace.messages and on_disk.meta == trace.meta
            print(f"{path.name}: {'ok' if same else 'DIFFERS'}")
            status |= not same
        else:
            write_trace(trace, path, level=LEVEL)
            print(f"{path.name}: {len(trace)} messages, {path.stat().st_size} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
