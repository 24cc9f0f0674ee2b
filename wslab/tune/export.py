"""Export a TuningConfig as files real servers accept: the public entry point.

What lives here: :data:`TARGETS`, :data:`TARGET_INFO` (each target's stack and whether
wslab's tests prove it by running it), the per-target ``render_<target>`` functions
(re-exported from ``wslab.tune.exporters``: each returns ``{filename: text}`` and never
writes, so a notebook can preview), :func:`render` (any target, ``all`` included),
:func:`target_rows` (the targets as a tidy table) and :func:`export`, which writes all or
nothing. What must not live here: the text of any target (see the
renderer modules) or starting servers (tests and the harness do that).

Writing: every file of one call is first written into a private staging directory inside
the output directory, then each is renamed into place; an error before the renames removes
the staging directory, so a failed export leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tune.exporters.aiohttp_web import render_aiohttp
from wslab.tune.exporters.centrifugo import render_centrifugo
from wslab.tune.exporters.nginx import (
    DEFAULT_LISTEN_PORT,
    DEFAULT_UPSTREAM_PORT,
    render_nginx,
)
from wslab.tune.exporters.node_ws import render_ws
from wslab.tune.exporters.socketio_node import render_socketio
from wslab.tune.exporters.socketio_py import render_python_socketio
from wslab.tune.exporters.uvicorn_fastapi import render_uvicorn
from wslab.tune.exporters.uwebsockets import render_uwebsockets
from wslab.tune.exporters.websockets_py import render_websockets
from wslab.tune.exporters.wslab_yaml import render_wslab

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

__all__ = [
    "SINGLE_TARGETS",
    "TARGETS",
    "TARGET_INFO",
    "TargetInfo",
    "export",
    "render",
    "render_aiohttp",
    "render_centrifugo",
    "render_nginx",
    "render_python_socketio",
    "render_socketio",
    "render_uvicorn",
    "render_uwebsockets",
    "render_websockets",
    "render_ws",
    "render_wslab",
    "target_rows",
]


@dataclass(frozen=True)
class TargetInfo:
    """One export target: the stack it configures and how wslab's tests check it."""

    stack: str
    proven_by_running: bool
    how: str


# What each target is, and whether wslab's tests start it and check what it negotiates
# with a real client (tests/tune/test_export.py, tests/tune/test_export_stacks.py).
TARGET_INFO: dict[str, TargetInfo] = {
    "wslab": TargetInfo("wslab itself (wslab.yaml)", True,
                        "reloaded by wslab; wslab's own server runs it"),
    "websockets": TargetInfo("python-websockets (asyncio)", True,
                             "started; negotiation, echo checked"),
    "uvicorn": TargetInfo("FastAPI / Starlette on uvicorn", True,
                          "started; negotiation, max size, heartbeat checked"),
    "aiohttp": TargetInfo("aiohttp.web", True,
                          "started; negotiation, window and context in fact, max size, "
                          "heartbeat checked"),
    "ws": TargetInfo("Node.js ws", True, "started; negotiation, echo checked"),
    "socketio": TargetInfo("Socket.IO on Node.js (socket.io 4.8)", True,
                           "started; negotiation, open packet, ping, max size checked"),
    "python-socketio": TargetInfo("python-socketio (ASGI on uvicorn)", True,
                                  "started; negotiation, open packet, ping, max size checked"),
    "nginx": TargetInfo("nginx in front of workers", True,
                        "nginx -t, and a proxied session"),
    "uwebsockets": TargetInfo("uWebSockets / uWebSockets.js", False,
                              "rendered only, not run by wslab's tests (cannot be installed "
                              "here); presets checked as tables"),
    "centrifugo": TargetInfo("Centrifugo v6", False,
                             "rendered only, not run by wslab's tests (cannot be installed "
                             "here); keys checked as data"),
}
SINGLE_TARGETS: tuple[str, ...] = tuple(TARGET_INFO)
TARGETS: tuple[str, ...] = (*SINGLE_TARGETS, "all")

# Files started directly (`./server.py`, `./server.js`) get the executable bit.
_EXECUTABLE = {"server.py", "server.js"}
_OPTIONS = ("upstream_port", "listen_port")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise WslabError(f"unknown export target {target!r}; known targets: {', '.join(TARGETS)}")


def _check_options(options: dict[str, object]) -> tuple[int, int]:
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise WslabError(f"unknown export option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(_OPTIONS)}")
    ports = []
    for name, default in (("upstream_port", DEFAULT_UPSTREAM_PORT),
                          ("listen_port", DEFAULT_LISTEN_PORT)):
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise WslabError(f"{name} must be a port number 1..65535, got {value!r}")
        ports.append(value)
    return ports[0], ports[1]


def render(config: TuningConfig, target: str, *, dictionaries: DictionarySet | None = None,
           **options: int) -> dict[str, str]:
    """Render one target (or ``all``) without writing anything.

    Args:
        config: The tuned configuration.
        target: One of :data:`TARGETS`.
        dictionaries: The pre-shared zstd dictionary set of a ``zstd-dict`` config; the
            websockets target ships it as ``dictionaries.json`` (others ignore it).
        **options: ``upstream_port`` (first backend port for nginx, default 8765) and
            ``listen_port`` (nginx's own port, default 8080).

    Returns:
        ``{relative path: text}``; for ``all`` each target's files sit under a directory
        named after the target (``websockets/server.py``, ``ws/server.js``, ...).

    Raises:
        WslabError: Unknown target or option, or a port out of range.
    """
    _check_target(target)
    upstream_port, listen_port = _check_options(dict(options))
    renderers: dict[str, Callable[[TuningConfig], dict[str, str]]] = {
        "wslab": render_wslab,
        "websockets": lambda c: render_websockets(c, dictionaries),
        "ws": render_ws,
        "nginx": lambda c: render_nginx(c, upstream_port=upstream_port,
                                        listen_port=listen_port),
        "uvicorn": render_uvicorn,
        "aiohttp": render_aiohttp,
        "socketio": render_socketio,
        "python-socketio": render_python_socketio,
        "uwebsockets": render_uwebsockets,
        "centrifugo": render_centrifugo,
    }
    if target != "all":
        return renderers[target](config)
    files: dict[str, str] = {}
    for name in SINGLE_TARGETS:
        for filename, text in renderers[name](config).items():
            files[f"{name}/{filename}"] = text
    return files


def target_rows(target: str = "all") -> list[dict[str, object]]:
    """The targets ``target`` renders, one plain dict each (for tables and ``--json``).

    Returns:
        Rows with ``target``, ``stack``, ``proven_by_running`` (bool) and ``how``.

    Raises:
        WslabError: Unknown target.
    """
    _check_target(target)
    names = SINGLE_TARGETS if target == "all" else (target,)
    return [{"target": name, "stack": TARGET_INFO[name].stack,
             "proven_by_running": TARGET_INFO[name].proven_by_running,
             "how": TARGET_INFO[name].how} for name in names]


def export(config: TuningConfig, target: str, out_dir: Path, *,
           dictionaries: DictionarySet | None = None, **options: int) -> list[Path]:
    """Render ``target`` and write its files into ``out_dir``, all or nothing.

    Args:
        config: The tuned configuration.
        target: One of :data:`TARGETS`.
        out_dir: Output directory (created if missing). Existing files of the same names
            are replaced; other files are left alone.
        dictionaries: As for :func:`render`.
        **options: As for :func:`render`.

    Returns:
        The written paths, in rendering order.

    Raises:
        WslabError: Unknown target or option, a bad port, or an output directory that
            cannot be written (nothing is left half-written).
    """
    files = render(config, target, dictionaries=dictionaries, **options)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".wslab-export-", dir=out))
    except OSError as exc:
        raise WslabError(f"{out}: cannot create output directory ({exc.strerror})") from None
    written: list[Path] = []
    created: list[Path] = []
    try:
        for rel, text in files.items():
            staged = staging / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(text, encoding="utf-8")
            if Path(rel).name in _EXECUTABLE:
                staged.chmod(0o755)
        for rel in files:
            final = out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            existed = final.exists()
            os.replace(staging / rel, final)
            written.append(final)
            if not existed:
                created.append(final)
    except OSError as exc:
        # Take back the files this call created; a replaced file keeps its new content.
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise WslabError(f"{out}: cannot write export ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return written
