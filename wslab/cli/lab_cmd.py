"""``wslab lab``: JupyterLab on the notebooks (or Voila for a workshop's projector).

Both bind 127.0.0.1 only. JupyterLab keeps its token (it prints the URL with it); the
extension manager is read-only so nothing reaches the network on its own. ``--app`` serves
one notebook as an app with Voila (:mod:`wslab.lab.app`: no code, no answers, offline),
at ``/`` of its server.

Both servers serve the one plotly.js the lab's figures share (:mod:`wslab.lab_assets`:
a Jupyter server extension in JupyterLab). JupyterLab also gets the lab's settings
(:func:`write_lab_settings`) as defaults a user's own settings still override: no news
prompt and no update check (nothing fetched from the network, no pop-up over the
plots), widget state saved with the notebook, so a reopened notebook shows its figures
before it is run, and every installed JupyterLab extension but plotly's renderer
(:data:`LEFT_OUT`): JupyterLab loads a renderer's code at start whether it is used or not,
and plotly's holds a second plotly.js (4.8 MB). A figure shown with ``fig.show()`` in a
lab kernel is drawn as a lab figure instead (:func:`wslab.lab.figures.use_lab_renderer`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from wslab.errors import WslabError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
}
"""JupyterLab setting defaults of the lab (plugin id -> settings)."""


LEFT_OUT = frozenset({"jupyterlab-plotly"})
"""JupyterLab extensions the lab leaves out (see the module's docstring)."""


def find_notebook(notebook: str, notebooks: Path = NOTEBOOKS) -> Path:
    """The notebook named ``notebook``: a file name, a stem or its number (``02``)."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    target = notebooks / name
    if not target.exists():
        matches = sorted(notebooks.glob(f"{notebook}_*.ipynb")) if notebook.isdigit() else []
        if len(matches) == 1:
            return matches[0]
        known = sorted(p.stem for p in notebooks.glob("*.ipynb"))
        raise WslabError(f"no notebook {notebook!r}; known: {', '.join(known)}")
    return target


def lab_command(*, app: bool = False, notebook: str = "00_tour", port: int = 8888,
                notebooks: Path = NOTEBOOKS) -> list[str]:
    """The command that starts JupyterLab (or the Voila app with ``app``), loopback only.

    Run it with :func:`lab_environment`'s variables (JupyterLab reads the lab's settings
    from there).
    """
    if app:
        target = find_notebook(notebook, notebooks)
        return [sys.executable, "-m", "wslab.lab.app", str(target), "--Voila.ip=127.0.0.1",
                f"--port={port}", "--no-browser"]
    bindir = Path(sys.executable).parent
    cmd = [str(bindir / "jupyter"), "lab", "--ServerApp.ip=127.0.0.1", f"--port={port}",
           f"--notebook-dir={notebooks}", "--LabApp.extension_manager=readonly",
           "--ServerApp.jpserver_extensions=wslab.lab_assets=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def write_lab_settings(folder: Path) -> Path:
    """Write :data:`LAB_SETTINGS` as a Jupyter config directory in ``folder``; return it.

    JupyterLab reads ``labconfig/default_setting_overrides.json`` from every directory on
    ``JUPYTER_CONFIG_PATH`` as the defaults of its settings, and ``jupyter_lab_config.json``
    as its options: there, the extensions folder :func:`link_extensions` writes.
    """
    path = folder / "labconfig" / "default_setting_overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LAB_SETTINGS, indent=2) + "\n")
    extensions = link_extensions(folder / "labextensions")
    (folder / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {
        "labextensions_path": [str(extensions)], "extra_labextensions_path": []}}, indent=2))
    return folder


def link_extensions(folder: Path) -> Path:
    """A JupyterLab extensions folder linking every installed extension but :data:`LEFT_OUT`.

    Extensions are found where JupyterLab looks (``jupyter_path("labextensions")``, first
    place first); ``@scope/name`` packages keep their scope folder.
    """
    from jupyter_core.paths import jupyter_path

    folder.mkdir(parents=True, exist_ok=True)
    for root in map(Path, jupyter_path("labextensions")):
        if not root.is_dir():
            continue
        for manifest in [*root.glob("*/package.json"), *root.glob("@*/*/package.json")]:
            name = manifest.parent.relative_to(root).as_posix()
            link = folder / name
            if name in LEFT_OUT or link.exists() or link.is_symlink():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(manifest.parent, target_is_directory=True)
    return folder


def lab_environment(config_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with ``config_dir`` first on JUPYTER_CONFIG_PATH."""
    base = dict(os.environ if env is None else env)
    paths = [str(config_dir), *filter(None, base.get("JUPYTER_CONFIG_PATH", "").split(
        os.pathsep))]
    base["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return base


def lab(
    app: Annotated[bool, typer.Option("--app", help="serve one notebook with Voila")] = False,
    notebook: Annotated[str, typer.Option(
        "--notebook", help="which one, with --app: a name or its number (02)")
                        ] = "02_frame_batching",
    port: Annotated[int, typer.Option("--port")] = 8888,
) -> None:
    """Open the interactive lab (JupyterLab on notebooks/, token on, loopback only)."""
    cmd = lab_command(app=app, notebook=notebook, port=port)
    if app:
        missing = importlib.util.find_spec("voila") is None
    else:
        missing = not Path(cmd[0]).exists() and shutil.which("jupyter") is None
    if missing:
        raise WslabError(f"{'voila' if app else 'jupyterlab'} is not installed: run `make "
                         "lab` (it installs the lab extra) or pip install -e '.[lab]'")
    from wslab.harness.lifeline import call

    with tempfile.TemporaryDirectory(prefix="wslab-lab-") as tmp:
        env = lab_environment(write_lab_settings(Path(tmp)))
        code = call(cmd, env=env)  # stopped with wslab, even on SIGKILL
    raise typer.Exit(code)
