"""The bundled traces in data/: present, small, and reproducible from their seed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from wslab.traces.generators import GENERATOR_KINDS, generate
from wslab.traces.io import read_trace

DATA = Path(__file__).resolve().parents[2] / "data"


def _make_data() -> object:
    spec = importlib.util.spec_from_file_location("make_data", DATA / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_total_size_under_budget() -> None:
    files = [DATA / f"{kind}.jsonl.zst" for kind in GENERATOR_KINDS]
    assert all(f.exists() for f in files)
    assert sum(f.stat().st_size for f in files) < 5_000_000


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_regenerating_gives_identical_content(kind: str) -> None:
    make_data = _make_data()
    on_disk = read_trace(DATA / f"{kind}.jsonl.zst")
    fresh = generate(kind, make_data.MESSAGES, make_data.SEED)  # type: ignore[attr-defined]
    assert len(on_disk) == 20_000
    assert on_disk.meta == fresh.meta
    assert on_disk.messages == fresh.messages
