"""Every notebook runs headless, top to bottom, in fast mode, in under 60 s.

Also checks what the repository holds: each ``.ipynb`` has its jupytext ``.py`` pair with
the same cells and cell tags, and no outputs are committed; and what Run All leaves in an
answer cell: no printed text, only the closed accordion of ``answer_check``.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from lab.lab_support import NOTEBOOKS
from nbclient import NotebookClient

from wslab.lab import ANSWER_TAG

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
BUDGET_S = 60.0


def test_there_are_notebooks() -> None:
    names = [p.stem for p in NOTEBOOK_FILES]
    assert names[:4] == ["00_tour", "01_content_analysis", "02_frame_batching",
                         "03_compression_negotiation"]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_pair_in_sync_and_outputs_stripped(path: Path) -> None:
    import jupytext

    nb = nbformat.read(path, as_version=4)
    pair = path.with_suffix(".py")
    assert pair.exists(), f"{pair.name} missing: run `jupytext --sync {path.name}`"
    script = jupytext.read(pair)
    assert [c.source for c in nb.cells] == [c.source for c in script.cells], (
        f"{path.name} and {pair.name} differ: run `jupytext --sync`")
    assert [c.metadata.get("tags", []) for c in nb.cells] == [
        c.metadata.get("tags", []) for c in script.cells], f"{path.name}: tags differ"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: outputs are committed")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path: Path, jupyter_env: dict[str, str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=BUDGET_S, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    t0 = time.perf_counter()
    client.execute()
    took = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    assert took < BUDGET_S, f"{path.name} took {took:.1f} s in fast mode"
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    if path.stem != "00_tour" or shown:
        assert shown, f"{path.name} displayed no panel"
    states = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "code" and ANSWER_TAG in cell.metadata.get("tags", []):
            # Run All prints no answer: the only output is the closed "Answer check" box.
            kinds = [o.output_type for o in cell.outputs]
            assert kinds == ["execute_result"] or kinds == ["display_data"], kinds
            view = cell.outputs[0].data["application/vnd.jupyter.widget-view+json"]
            state = states[view["model_id"]]
            assert state["model_name"] == "AccordionModel"
            assert state["state"].get("selected_index") is None  # closed
