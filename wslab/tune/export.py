"""Export a TuningConfig as files real servers accept: the public entry point.

What lives here: :data:`TARGETS`, the per-target ``render_<target>`` functions (re-exported
from ``wslab.tune.exporters``: each returns ``{filename: text}`` and never writes, so a
notebook can preview), :func:`render` (any target, ``all`` included) and :func:`export`,
which writes all or nothing. What must not live here: the text of any target (see the
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
from pathlib import Path
from typing import TYPE_CHECKING

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.tune.exporters.centrifugo import render_centrifugo
from wslab.tune.exporters.nginx import (
    DEFAULT_LISTEN_PORT,
    DEFAULT_UPSTREAM_PORT,
    render_nginx,
)
from wslab.tune.exporters.node_ws import render_ws
from wslab.tune.exporters.uwebsockets import render_uwebsockets
from wslab.tune.exporters.websockets_py import render_websockets
from wslab.tune.exporters.wslab_yaml import render_wslab

if TYPE_CHECKING:
    from wslab.codecs.zstd_dict import DictionarySet

__all__ = [
    "SINGLE_TARGETS",
    "TARGETS",
    "export",
    "render",
    "render_centrifugo",
    "render_nginx",
    "render_uwebsockets",
    "render_websockets",
    "render_ws",
    "render_wslab",
]

SINGLE_TARGETS: tuple[str, ...] = (
    "wslab", "websockets", "ws", "nginx", "uwebsockets", "centrifugo",
)
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
