"""Compiled twins (wslab/compiled.py, scripts/build_native.py): loaded only when built from
the present source, and the compiled selector takes the Python one's decisions."""

from __future__ import annotations

import importlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wslab import compiled
from wslab.codecs.deflate import DeflateEncoder
from wslab.compressor import FrameCompressor
from wslab.selector import CompressionSelector, PythonCompressionSelector

ROOT = Path(__file__).resolve().parents[1]


def _package(tmp_path: Path, twin_hash: str | None) -> Path:
    """A package ``twinpkg`` with a module ``mod`` and, unless ``twin_hash`` is None, a
    stand-in twin ``_mod_native`` recording that hash."""
    pkg = tmp_path / "twinpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("WHO = 'python'\n")
    if twin_hash is not None:
        (pkg / "_mod_native.py").write_text(f"WHO = 'twin'\nSOURCE_SHA256 = {twin_hash!r}\n")
    return pkg


@pytest.mark.parametrize("case", ["current", "stale", "absent"])
def test_a_twin_loads_only_when_built_from_the_present_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    source_hash = compiled.source_digest(_package(tmp_path / "probe", None) / "mod.py")
    twin_hash = {"current": source_hash, "stale": "0" * 64, "absent": None}[case]
    pkg = _package(tmp_path, twin_hash)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("twinpkg", "twinpkg._mod_native"):
        sys.modules.pop(name, None)
    twin = compiled.current_twin("twinpkg.mod", pkg / "mod.py")
    if case == "current":
        assert twin is not None and twin.WHO == "twin"
        assert compiled.IMPLEMENTATIONS["twinpkg.mod"] == "compiled"
    else:
        assert twin is None
        assert compiled.IMPLEMENTATIONS["twinpkg.mod"] == "python"
    # An edit to the source, however small, retires the twin.
    (pkg / "mod.py").write_text("WHO = 'python' \n")
    assert compiled.current_twin("twinpkg.mod", pkg / "mod.py") is None


def test_the_selector_runs_compiled_where_a_compiler_is() -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine: the selector runs as plain Python "
                    "(scripts/os-deps.sh test installs gcc where it can)")
    check = subprocess.run([sys.executable, "scripts/build_native.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, (
        f"{check.stderr.strip()}: `make test` builds it; after editing wslab/selector.py "
        "run python scripts/build_native.py")
    assert compiled.IMPLEMENTATIONS["wslab.selector"] == "compiled"
    assert CompressionSelector.__module__ == "wslab._selector_native"
    assert PythonCompressionSelector.__module__ == "wslab.selector"
    native = importlib.import_module("wslab._selector_native")
    assert compiled.source_digest(ROOT / "wslab" / "selector.py") == native.SOURCE_SHA256


def _mixed(rng: random.Random) -> tuple[bytes, str]:
    pick = rng.random()
    if pick < 0.45:
        n = rng.randrange(20)
        return b'{"user": %d, "text": "%s"}' % (n, b"hello " * n), f"json{n % 3}"
    if pick < 0.7:
        return rng.randbytes(rng.randrange(1, 400)), "blob"
    if pick < 0.9:
        return b"\xfe\x01" * 8 + rng.randbytes(rng.randrange(0, 200)), "record"
    return b"x" * rng.randrange(0, 12), "tiny"


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_and_python_selectors_take_the_same_decisions(seed: int) -> None:
    # Real deflate sizes, every kind of payload and content class, warm-up, probes and
    # trust; one frame at a time and in runs (the simulator's path, one fused call per
    # frame for the compiled selector, decide/observe for the Python one).
    rng = random.Random(seed)
    frames = [_mixed(rng) for _ in range(4000)]
    payloads = [p for p, _ in frames]
    keys = [k for _, k in frames]

    def run(selector_class: type[CompressionSelector], in_runs: bool) -> list[bytes | None]:
        comp = FrameCompressor(lambda: DeflateEncoder(12, 5, 6),
                               selector_class("adaptive", settle=4, recheck_every=3))
        if not in_runs:
            return [comp.encode(p, k) for p, k in frames]
        out: list[bytes | None] = []
        for at in range(0, len(frames), 333):
            out += comp.encode_many(payloads[at:at + 333], keys[at:at + 333])[0]
        return out

    want = run(PythonCompressionSelector, in_runs=False)
    assert 0 < want.count(None) < len(want)
    for selector_class in (PythonCompressionSelector, CompressionSelector):
        for in_runs in (False, True):
            assert run(selector_class, in_runs) == want, (selector_class, in_runs)
