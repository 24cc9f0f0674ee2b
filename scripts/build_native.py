"""Build the compiled twins of wslab's hot modules with mypyc (see wslab/compiled.py).

    python scripts/build_native.py          build what is missing or out of date
    python scripts/build_native.py --check  exit 1 (saying which) if a twin is missing or stale

``make`` runs it before the demo, the tests and the benchmarks. Quiet when every twin was
built from its module's present source (one file read and hash each). A module changed
since its twin was built is compiled again (about half a minute). Without a C compiler it
says so in one line and builds nothing: the modules then run as plain Python, the same
results only slower.

How. mypyc compiles a copy of the module: its source down to the line
``# --- the compiled twin is this source down to here`` (below it, the pure module loads
its twin), with ``SOURCE_SHA256 = "<hash of the whole source>"`` appended, saved as
``wslab/_<name>_native.py`` in a scratch copy of the package (so the build's own files and
setuptools' view of pyproject.toml stay out of the tree). The resulting extension modules
are moved into ``wslab/`` with atomic renames; the pure module loads its twin only when
the recorded hash matches its own bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wslab"
MODULES = ("selector",)  # wslab modules that get a twin
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
CUT = "\n# --- the compiled twin is this source down to here"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def twin_files(name: str) -> list[Path]:
    """The extension modules a built twin of ``name`` consists of."""
    return sorted(PACKAGE.glob(f"_{name}_native*{SUFFIX}"))


def built_from(name: str) -> str | None:
    """The source hash the present twin of ``name`` was built from (None: not built)."""
    stamp = PACKAGE / f"_{name}_native.sha256"
    if not twin_files(name) or not stamp.exists():
        return None
    return stamp.read_text().strip()


def compiler() -> str | None:
    found = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(found.split()[0])


def build(name: str) -> None:
    source = PACKAGE / f"{name}.py"
    wanted = digest(source)
    with tempfile.TemporaryDirectory(prefix="wslab-native-") as scratch:
        copy = Path(scratch) / "wslab"
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns(
            "__pycache__", f"*{SUFFIX}", "_*_native.*"))
        text = source.read_text(encoding="utf-8")
        if CUT not in text:
            sys.exit(f"build_native: wslab/{name}.py has no line {CUT.strip()!r} "
                     "(what follows it, the loading of the twin, is not compiled)")
        twin = copy / f"_{name}_native.py"
        twin.write_text(text.split(CUT)[0] + f'\nSOURCE_SHA256 = "{wanted}"\n',
                        encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "mypyc", str(twin.relative_to(scratch))],
                              cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"build_native: mypyc could not compile wslab/{name}.py:\n"
                     f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        made = sorted(copy.glob(f"_{name}_native*{SUFFIX}"))
        if not made:
            sys.exit(f"build_native: mypyc left no extension module for wslab/{name}.py")
        for old in twin_files(name):
            old.unlink()
        for built in made:
            staged = PACKAGE / f".{built.name}.part"
            shutil.copyfile(built, staged)
            os.replace(staged, PACKAGE / built.name)
    stamp = PACKAGE / f"_{name}_native.sha256"
    staged = PACKAGE / f".{stamp.name}.part"
    staged.write_text(wanted + "\n")
    os.replace(staged, stamp)
    print(f"build_native: compiled wslab/{name}.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only say whether every twin is built from the present source")
    args = parser.parse_args()
    stale = [n for n in MODULES if built_from(n) != digest(PACKAGE / f"{n}.py")]
    if args.check:
        if stale:
            sys.exit(f"build_native: not built or out of date: {', '.join(stale)} "
                     "(run: python scripts/build_native.py)")
        return
    if not stale:
        return
    if compiler() is None:
        print("build_native: no C compiler, so wslab's selector runs as plain Python "
              "(slower simulations with policy adaptive); to compile it: apt-get install gcc")
        return
    for name in stale:
        build(name)


if __name__ == "__main__":
    main()
