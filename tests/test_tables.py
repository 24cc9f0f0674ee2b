"""Tables on disk (``wslab/tables.py``): both formats round-trip, failures leave nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from wslab.errors import WslabError
from wslab.tables import read_table, write_table, write_tables


def frame() -> pd.DataFrame:
    return pd.DataFrame({"point": ["a", "b"], "ws_bytes": [120, 98],
                         "latency_p99_ms": [1.5, float("nan")]})


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rows{suffix}"
    write_table(frame(), path)
    pd.testing.assert_frame_equal(read_table(path), frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_write_tables_writes_the_twin(tmp_path: Path) -> None:
    written = write_tables(frame(), tmp_path / "sweep.csv")
    assert written == [tmp_path / "sweep.csv", tmp_path / "sweep.parquet"]
    for path in written:
        pd.testing.assert_frame_equal(read_table(path), frame())


@pytest.mark.parametrize("call", [
    lambda p: write_table(frame(), p), lambda p: write_tables(frame(), p), read_table])
def test_other_suffixes_are_refused(tmp_path: Path, call: Callable[[Path], object]) -> None:
    with pytest.raises(WslabError, match=r"rows\.json: .*\.parquet or \.csv"):
        call(tmp_path / "rows.json")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unreadable_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(WslabError, match="no such table file"):
        read_table(tmp_path / "absent.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(WslabError, match=r"junk\.parquet: not a readable table"):
        read_table(tmp_path / "junk.parquet")


def test_a_failed_write_keeps_the_old_table(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    write_table(frame(), path)
    unwritable = pd.DataFrame({"mixed": [1, "one", b"\x00"]})  # pyarrow refuses the column
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises
        write_table(unwritable, path)
    pd.testing.assert_frame_equal(read_table(path), frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]
