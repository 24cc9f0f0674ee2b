"""Helpers the lab tests (and ``benchmarks/bench_browser.py``) share: the processes.

Paths, a venv kernelspec, a free loopback port; and, for the browser tests, servers
started the way ``wslab lab`` starts them (:func:`start_jupyterlab`, :func:`start_voila`,
both on 127.0.0.1) and headless Chromium (:func:`launch_chromium`). What the tests do in
the page (meter its traffic, Run All, read its figures and answers) is in
:mod:`lab.lab_page`.

The servers are tied to the test process (:func:`wslab.harness.lifeline.popen`): they stop
when a test ends, and die with pytest even when it is killed. Playwright never downloads a
browser here: it drives the system's ``/usr/bin/chromium``
(Debian package ``chromium``) through ``executable_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "out" / "test-artifacts"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def write_kernelspec(root: Path) -> Path:
    """A ``python3`` kernelspec under ``root/kernels`` that runs this interpreter."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (wslab venv)",
        "language": "python",
        "metadata": {"debugger": False},
    }))
    return spec


def jupyter_dirs(root: Path) -> dict[str, str]:
    """Private Jupyter dirs under ``root`` and a kernelspec running this interpreter, as
    environment variables (what the ``jupyter_env`` fixture gives the tests)."""
    write_kernelspec(root / "path")
    return {
        "JUPYTER_PATH": str(root / "path"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers ----------------------------------------------------------------------------


def copy_notebooks(folder: Path, source: Path = NOTEBOOKS) -> Path:
    """A copy of the notebooks (``.ipynb`` only) in ``folder``, so nothing the browser
    saves touches the repository."""
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.py", ".ipynb_*"),
                    dirs_exist_ok=True)
    return folder


@dataclass
class Server:
    """A server a test started: its base URL, token (JupyterLab) and process."""

    base: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path}" + (f"{sep}token={self.token}" if self.token else "")


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, what: str,
             timeout: float = 90.0) -> None:
    """Wait until ``url`` answers (any HTTP status: the server is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start:\n{log.read_text()}") from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def server_env(jupyter_env: dict[str, str], *, fast: bool, stock: bool = False
               ) -> dict[str, str]:
    """The environment of a lab server: the tests' Jupyter dirs, fast mode or not, and
    plotly's own figures with ``stock`` (the benchmark's peer).

    ``WSLAB_TEST_FIGURES=stock`` in the tests' environment makes every server stock: the
    browser tests must then fail (it is how they were seen to catch the old figures).
    """
    stock = stock or os.environ.get("WSLAB_TEST_FIGURES", "") == "stock"
    env = {**os.environ, **jupyter_env}
    env.pop("WSLAB_FAST", None)
    env.pop("WSLAB_FIGURES", None)
    if fast:
        env["WSLAB_FAST"] = "1"
    if stock:
        env["WSLAB_FIGURES"] = "stock"
    return env


@contextlib.contextmanager
def start_jupyterlab(folder: Path, env: dict[str, str]) -> Iterator[Server]:
    """JupyterLab as ``wslab lab`` starts it (its command, settings and extension), over
    the notebooks in ``folder``, on a free 127.0.0.1 port with a random token."""
    from wslab.cli.lab_cmd import lab_command, lab_environment, write_lab_settings
    from wslab.harness.lifeline import popen

    port = free_port()
    token = os.urandom(16).hex()
    settings = write_lab_settings(folder.parent / f"lab-settings-{port}")
    cmd = [*lab_command(port=port, notebooks=folder), "--no-browser",
           f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"]
    log = folder.parent / f"jupyterlab-{port}.log"
    with log.open("w") as out:
        proc = popen(cmd, cwd=folder, env=lab_environment(settings, env), stdout=out,
                     stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        _wait_up(server.url("api/status"), proc, log, "JupyterLab")
        yield server
    finally:
        _stop(proc)


@contextlib.contextmanager
def start_voila(notebook: Path, env: dict[str, str]) -> Iterator[Server]:
    """The Voila app as ``wslab lab --app`` starts it, for ``notebook``, on a free port."""
    from wslab.cli.lab_cmd import lab_command
    from wslab.harness.lifeline import popen

    port = free_port()
    cmd = lab_command(app=True, notebook=notebook.stem, port=port, notebooks=notebook.parent)
    cmd.append("--Voila.port_retries=0")
    log = notebook.parent.parent / f"voila-{port}.log"
    with log.open("w") as out:
        proc = popen(cmd, cwd=notebook.parent, env=env, stdout=out,
                     stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", "", proc, log)
    try:
        # wslab's handler answers 404 for an unknown file: up, and no kernel started
        _wait_up(f"{server.base}/wslab/static/up", proc, log, "Voila")
        yield server
    finally:
        _stop(proc)


def api(server: Server, path: str, method: str = "GET") -> Any:
    """A call to the Jupyter server's REST API (JSON in, JSON out)."""
    req = urllib.request.Request(server.url(path), method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def shutdown_kernels(server: Server) -> None:
    """End every session of a JupyterLab (their kernels stop): the next run starts cold."""
    for session in api(server, "api/sessions"):
        api(server, f"api/sessions/{session['id']}", method="DELETE")


@contextlib.contextmanager
def lab_in_chromium(work: Path, jupyter_env: dict[str, str], *,
                    fast: bool) -> Iterator[tuple[Server, Path, Any]]:
    """JupyterLab over a fresh copy of the notebooks in ``work``, and a headless Chromium:
    what the browser tests' module fixtures share (both stop when the block ends)."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    folder = copy_notebooks(work)
    with start_jupyterlab(folder, server_env(jupyter_env, fast=fast)) as server, \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            yield server, folder, browser
        finally:
            browser.close()


def need_chromium() -> None:
    """Fails (never skips) without the system Chromium; playwright comes with the dev extra."""
    import pytest

    if not CHROMIUM.exists():
        from services import SETUP

        pytest.fail(f"{CHROMIUM} is not installed (OS package chromium): {SETUP}",
                    pytrace=False)
    import playwright.sync_api  # noqa: F401 - in the dev extra, so an ImportError is a bug


def launch_chromium(pw: Any) -> Any:
    """Headless system Chromium, nothing fetched on its own."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                              headless=True)
