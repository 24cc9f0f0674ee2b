"""``wslab lab``: JupyterLab on the notebooks (or Voila for a workshop's projector).

Both bind 127.0.0.1 only. JupyterLab keeps its token (it prints the URL with it); the
extension manager is read-only so nothing reaches the network on its own. ``--app`` serves
one notebook as an app with Voila (code hidden, widgets live).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from wslab.errors import WslabError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def lab_command(*, app: bool = False, notebook: str = "00_tour", port: int = 8888,
                notebooks: Path = NOTEBOOKS) -> list[str]:
    """The command that starts JupyterLab (or Voila with ``app``), loopback only."""
    bindir = Path(sys.executable).parent
    if app:
        target = notebooks / (notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb")
        if not target.exists():
            known = sorted(p.stem for p in notebooks.glob("*.ipynb"))
            raise WslabError(f"no notebook {notebook!r}; known: {', '.join(known)}")
        return [str(bindir / "voila"), str(target), "--Voila.ip=127.0.0.1",
                f"--port={port}", "--no-browser"]
    cmd = [str(bindir / "jupyter"), "lab", "--ServerApp.ip=127.0.0.1", f"--port={port}",
           f"--notebook-dir={notebooks}", "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def lab(
    app: Annotated[bool, typer.Option("--app", help="serve one notebook with Voila")] = False,
    notebook: Annotated[str, typer.Option("--notebook", help="which one, with --app")
                        ] = "02_frame_batching",
    port: Annotated[int, typer.Option("--port")] = 8888,
) -> None:
    """Open the interactive lab (JupyterLab on notebooks/, token on, loopback only)."""
    cmd = lab_command(app=app, notebook=notebook, port=port)
    if not Path(cmd[0]).exists() and shutil.which(Path(cmd[0]).name) is None:
        raise WslabError(f"{Path(cmd[0]).name} is not installed: run `make lab` (it installs "
                         "the lab extra) or pip install -e '.[lab]'")
    from wslab.harness.lifeline import call

    raise typer.Exit(call(cmd))  # stopped with wslab, even on SIGKILL
