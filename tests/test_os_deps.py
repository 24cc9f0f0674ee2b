"""``scripts/os-deps.sh``, the OS set-up of ``make test`` and ``make demo``.

Nothing is installed or removed here: the programs it looks for are hidden
(``WSLAB_OS_DEPS_PATH`` points at an empty or a stub directory) and ``apt-get``, ``sudo``,
``service``, ``systemctl`` and ``npm`` are stand-ins that record how they were called. The
non-root case runs as the user ``nobody`` for real (``setpriv``) when the suite runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "os-deps.sh"
PACKAGES = ("redis-server", "nginx", "chromium", "nodejs", "npm", "gcc")
PROGRAMS = ("redis-server", "nginx", "chromium", "node", "npm", "gcc")
# Records one JSON line per call: the tool's name, its arguments, DEBIAN_FRONTEND.
RECORDER = """#!/bin/sh
printf '{"tool": "%s", "args": "%s", "frontend": "%s"}\\n' "$(basename "$0")" "$*" \\
  "${DEBIAN_FRONTEND:-}" >> "$WSLAB_TEST_CALLS"
"""
SUDO_REFUSES = RECORDER + "exit 1\n"  # what `sudo -n` does without a password rule
SUDO_RUNS = RECORDER + '[ "$1" = -n ] && shift\nexec "$@"\n'


@pytest.fixture()
def box() -> Iterator[Path]:
    """A directory every user can read and write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="wslab-osdeps-", dir="/tmp"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tools(box: Path, sudo: str = SUDO_REFUSES) -> Path:
    """Stand-ins for apt-get, sudo, service, systemctl and npm, first on PATH."""
    bin_dir = box / "bin"
    bin_dir.mkdir()
    for name, body in (("apt-get", RECORDER), ("sudo", sudo), ("service", RECORDER),
                       ("systemctl", RECORDER), ("npm", RECORDER)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_script(box: Path, bin_dir: Path, *, found: Path, as_nobody: bool = False,
               uid: str | None = None, node_dir: Path | None = None,
               what: str = "test") -> tuple[subprocess.CompletedProcess[str], list[dict[str, str]]]:
    """Run the script with the programs looked for in ``found`` only; (result, calls)."""
    calls = box / "calls.jsonl"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "WSLAB_OS_DEPS_PATH": str(found),
           "WSLAB_TEST_CALLS": str(calls), "HOME": str(box),
           "WSLAB_NODE_DIR": str(node_dir or box / "no-node-dir")}
    if uid is not None:
        env["WSLAB_OS_DEPS_UID"] = uid
    cmd = ["sh", str(SCRIPT), what]
    if as_nobody and os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, [json.loads(line) for line in lines]


def empty(box: Path) -> Path:
    folder = box / "nothing-installed"
    folder.mkdir()
    return folder


def test_without_root_or_sudo_it_stops_at_once_with_the_command_to_run(box: Path) -> None:
    done, calls = run_script(box, tools(box), found=empty(box), as_nobody=True)
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends" in lines[0]
    for package in PACKAGES:
        assert package in lines[0].split("--no-install-recommends", 1)[1].split()
    # Nothing was attempted: sudo was only asked whether it would run without a password.
    assert [c["tool"] for c in calls] == ["sudo"]
    assert calls[0]["args"] == "-n true"


@pytest.mark.parametrize("how", ["root", "sudo"])
def test_it_installs_with_apt_get_and_stops_the_services_it_started(box: Path,
                                                                    how: str) -> None:
    sudo = SUDO_RUNS if how == "sudo" else SUDO_REFUSES
    done, calls = run_script(box, tools(box, sudo), found=empty(box),
                             as_nobody=how == "sudo", uid="0" if how == "root" else None)
    apt = [c for c in calls if c["tool"] == "apt-get"]
    assert [c["args"].split()[0] for c in apt] == ["update", "install"]
    assert all(c["frontend"] == "noninteractive" for c in apt)
    install = apt[1]["args"].split()
    assert "-y" in install and "--no-install-recommends" in install
    assert set(PACKAGES) <= set(install)
    assert "python3-venv" not in install  # .venv exists, so it is not needed
    stopped = {c["args"] for c in calls if c["tool"] in ("service", "systemctl")}
    assert any("nginx" in s and "stop" in s for s in stopped)
    assert any("redis-server" in s and "stop" in s for s in stopped)
    used_sudo = [c for c in calls if c["tool"] == "sudo" and c["args"] != "-n true"]
    assert bool(used_sudo) == (how == "sudo")
    # The stand-in installed nothing, so the script says so in one line and fails.
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("wslab: still missing after apt-get install:")
    assert all(p in last for p in PACKAGES)


def test_with_everything_present_it_is_silent_and_touches_nothing(box: Path) -> None:
    present = box / "installed"
    present.mkdir()
    for name in PROGRAMS:
        (present / name).write_text("#!/bin/sh\n")
        (present / name).chmod(0o755)
    node_dir = box / "node"
    (node_dir / "node_modules").mkdir(parents=True)
    lock = node_dir / "package-lock.json"
    marker = node_dir / "node_modules" / ".package-lock.json"
    lock.write_text("{}")
    marker.write_text("{}")
    os.utime(lock, (1_000_000, 1_000_000))  # installed after the lock was written
    bin_dir = tools(box)
    done, calls = run_script(box, bin_dir, found=present, uid="0", node_dir=node_dir)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert calls == []
    # A newer lock file (a changed pin) reinstalls the npm packages, in that directory.
    os.utime(marker, (1_000_000, 1_000_000))
    os.utime(lock, None)
    done, calls = run_script(box, bin_dir, found=present, uid="0", node_dir=node_dir)
    assert done.returncode == 0, done.stderr
    assert [(c["tool"], c["args"].split()[0]) for c in calls] == [("npm", "ci")]


def test_demo_needs_no_service_packages(box: Path) -> None:
    done, calls = run_script(box, tools(box), found=empty(box), as_nobody=True, what="demo")
    assert (done.returncode, done.stderr, calls) == (0, "", [])
