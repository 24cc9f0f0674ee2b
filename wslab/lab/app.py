"""The Voila app of one notebook (``wslab lab --app --notebook 02``): for a projector.

``python -m wslab.lab.app NOTEBOOK.ipynb [voila options]`` runs Voila with what the lab
needs on top of it:

- **no answers, no code**: before the kernel starts, the answer cells (see
  :func:`is_answer_cell`) are taken out of the notebook, so they neither show nor run; the
  template strips every code cell's source, so the page shows the narrative, the printed
  results and the panels.
- **offline**: the ``wslab`` template (``jupyter/voila/templates/wslab``, on
  ``JUPYTER_PATH`` for this process) is Voila's lab template without its CDN links; only
  the extensions the panels need are loaded (the widget manager and anywidget), and the
  one plotly.js of the page comes from :mod:`wslab.lab_assets` on the same server.
- **opens on the notebook**: Voila serves it at ``/``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ANSWER_TAGS = frozenset({"answer", "answers", "solution", "solutions"})
"""Cell tags that mark an exercise's answer."""

ANSWER_HEADING = re.compile(r"^#+\s*(answers?|solutions?)\b", re.IGNORECASE)
"""A markdown heading that opens an answer ("### Answers")."""

DATA_DIR = Path(__file__).parent / "jupyter"
"""A Jupyter data directory holding the ``wslab`` Voila template."""

EXTENSIONS = ("@voila-dashboards/widgets-manager8", "@jupyter-widgets/jupyterlab-manager",
              "anywidget")
"""The only JupyterLab extensions the app loads (others may not fit Voila's JupyterLab).
Not plotly's renderer: its code holds a second plotly.js, loaded with the page whether a
figure uses it or not; the lab's figures are widgets (:mod:`wslab.lab.figures`)."""


def is_answer_cell(cell: Any) -> bool:
    """True for a cell that holds an exercise's answer.

    An answer cell is tagged ``answer`` (or ``answers``, ``solution``), or collapsed in
    JupyterLab (``metadata.jupyter.source_hidden``, how the notebooks first marked them),
    or a markdown cell whose first line is an "Answers" heading.
    """
    meta = cell.get("metadata", {}) or {}
    tags = {str(t).lower() for t in meta.get("tags", []) or []}
    if tags & ANSWER_TAGS:
        return True
    jupyter = meta.get("jupyter", {}) or {}
    if jupyter.get("source_hidden"):
        return True
    if cell.get("cell_type") == "markdown":
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        first = text.lstrip().split("\n", 1)[0].strip()
        return ANSWER_HEADING.match(first) is not None
    return False


def without_answers(notebook: Any) -> Any:
    """``notebook`` with its answer cells removed (the same object, changed in place)."""
    notebook.cells = [c for c in notebook.cells if not is_answer_cell(c)]
    return notebook


def _prelaunch_hook(_request: Any, notebook: Any, cwd: str) -> Any:
    del cwd
    return without_answers(notebook)


def _voila_class() -> Any:
    """Voila's application class with wslab's handlers and defaults (imported late)."""
    from traitlets.config import Config

    Voila = importlib.import_module("voila.app").Voila  # the lab extra; no type hints

    from wslab.lab_assets import handlers as asset_handlers

    class WslabVoila(Voila):  # type: ignore[misc, valid-type]
        """Voila serving wslab's plotly.js, with the ``wslab`` template and no answers."""

        name = "wslab-voila"

        def initialize(self, argv: Any = None) -> None:
            defaults = Config()
            defaults.VoilaConfiguration.template = "wslab"
            defaults.VoilaConfiguration.extension_allowlist = list(EXTENSIONS)
            defaults.VoilaConfiguration.prelaunch_hook = _prelaunch_hook
            self.update_config(defaults)
            super().initialize(argv)

        def init_handlers(self) -> list[Any]:
            base = self.server_url or self.base_url or "/"
            if not base.endswith("/"):
                base += "/"
            # before Voila's catch-all route that serves the notebook at /
            return [*asset_handlers(base), *super().init_handlers()]

    return WslabVoila


def main(argv: Sequence[str] | None = None) -> None:
    """Run the app: Voila's command line (a notebook path, ``--port=...``...)."""
    paths = os.environ.get("JUPYTER_PATH", "")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(DATA_DIR), paths) if p)
    _voila_class().launch_instance(argv=list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
