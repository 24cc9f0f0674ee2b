"""Tidy tables on disk: parquet or CSV, chosen by the file's suffix, written atomically.

What lives here: :func:`write_table`, :func:`write_tables` (a table and its twin in the
other format) and :func:`read_table`. Every layer that keeps a table uses them: the live
harness for its per-connection and per-message logs, the sweeps and the optimiser for
their results, the command line for ``--messages-out`` and the results it reads back.
Writes go through :func:`wslab.atomic.atomic_output`, so a failure leaves no half-written
table. What a table holds (sweep rows, message logs) is decided by the caller, not here.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from wslab.atomic import atomic_output
from wslab.errors import WslabError

SUFFIXES = (".parquet", ".csv")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` to ``.parquet`` or ``.csv``; nothing half-written on error."""
    p = Path(path)
    if p.suffix not in SUFFIXES:
        raise WslabError(f"{p}: a table goes to a .parquet or .csv file")
    with atomic_output(p) as handle:
        if p.suffix == ".parquet":
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            handle.write(buffer.getvalue())
        else:
            handle.write(frame.to_csv(index=False).encode("utf-8"))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table`."""
    p = Path(path)
    if p.suffix not in SUFFIXES:
        raise WslabError(f"{p}: expected a .parquet or .csv table")
    if not p.exists():
        raise WslabError(f"{p}: no such table file")
    try:
        return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as exc:
        raise WslabError(f"{p}: not a readable table ({exc})") from None


def write_tables(frame: pd.DataFrame, path: str | Path) -> list[Path]:
    """Write ``path`` and its twin in the other format (``.parquet`` beside ``.csv``)."""
    p = Path(path)
    if p.suffix not in SUFFIXES:
        raise WslabError(f"{p}: a table goes to a .parquet or .csv file")
    twin = p.with_suffix(".csv" if p.suffix == ".parquet" else ".parquet")
    write_table(frame, p)
    write_table(frame, twin)
    return [p, twin]
