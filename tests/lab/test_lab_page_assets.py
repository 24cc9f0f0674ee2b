"""What the lab's pages load: one plotly.js, from their own server (issue 15, item 8).

JupyterLab loads every installed renderer extension's code when a page opens, used or not,
and plotly's (``jupyterlab-plotly``) bundles a whole plotly.js: a page of the lab held two
copies beside the one the lab's figures share. ``wslab lab`` leaves that extension out and
draws a ``fig.show()`` as a lab figure instead. The browser tests count the copies a page
really loads; these check the two pieces without a browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import pytest
from jupyter_core.paths import jupyter_path

from wslab.cli.lab_cmd import LEFT_OUT, write_lab_settings
from wslab.lab import figures


def extensions_in(root: Path) -> set[str]:
    """Names of the JupyterLab extensions in one extensions folder (``@scope/name`` too)."""
    manifests = [*root.glob("*/package.json"), *root.glob("@*/*/package.json")]
    return {m.parent.relative_to(root).as_posix() for m in manifests}


def installed_extensions() -> set[str]:
    return set().union(*(extensions_in(Path(p)) for p in jupyter_path("labextensions")))


def test_lab_settings_link_every_extension_but_plotlys_renderer(tmp_path: Path) -> None:
    installed = installed_extensions()
    assert "jupyterlab-plotly" in installed, "plotly no longer ships its renderer: see LEFT_OUT"
    folder = write_lab_settings(tmp_path / "settings")
    config = json.loads((folder / "jupyter_lab_config.json").read_text())["LabApp"]
    linked = extensions_in(Path(config["labextensions_path"][0]))
    assert linked == installed - LEFT_OUT
    assert {"anywidget", "@jupyter-widgets/jupyterlab-manager"} <= linked
    assert config["extra_labextensions_path"] == []


def test_fig_show_in_a_kernel_draws_a_lab_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    kernel_shell = SimpleNamespace(kernel=object())
    monkeypatch.setattr(IPython, "get_ipython", lambda: kernel_shell)
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    monkeypatch.delenv("WSLAB_FIGURES", raising=False)
    assert figures.use_lab_renderer()
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": {"text": "t"}})
    bundle: dict[str, Any] = fig._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    from ipywidgets.widgets.widget import _instances

    widget = _instances[view["model_id"]]
    assert isinstance(widget, figures.LabFigure)
    assert widget.layout.title.text == "t" and list(widget.data[0].y) == [1, 2]
    widget.close()


def test_outside_a_kernel_plotly_keeps_its_renderers(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert not figures.use_lab_renderer()
