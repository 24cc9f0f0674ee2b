"""Where the bundled example traces are and how to load them.

What lives here: :data:`DATA_DIR` and :func:`bundled_traces`, used by the predictor fit,
the policy evaluation, the tests and the benchmarks. Nothing else; reading a trace file is
``wslab.traces.io``'s job.
"""

from __future__ import annotations

from pathlib import Path

from wslab.traces.model import Trace

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def bundled_traces(data_dir: Path | None = None) -> dict[str, Trace]:
    """The bundled traces ``data/*.jsonl.zst``, by file stem, sorted by name.

    Returns an empty dict when the folder holds none (e.g. an installed package without
    the repository's ``data/``).
    """
    from wslab.traces.io import read_trace

    folder = DATA_DIR if data_dir is None else data_dir
    return {p.name.split(".")[0]: read_trace(p) for p in sorted(folder.glob("*.jsonl.zst"))}
