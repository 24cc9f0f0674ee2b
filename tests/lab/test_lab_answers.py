"""Exercise answers stay hidden after Run All, and a Voila app never shows them.

JupyterLab shows a markdown cell's source again whenever it renders the cell, and a code
cell's outputs whenever it runs, so ``source_hidden`` on an answer did not survive *Run
All* (issue 15: the "Answers" cells opened and the hidden answer code printed its
results). What survives is checked here, notebook by notebook: answers are tagged
``answer``; their text sits in a closed ``<details>``; their code only defines a check and
shows :func:`wslab.lab.answer_check`'s closed accordion (which runs nothing until its
button is pressed, and shows nothing in a Voila kernel). ``test_lab_notebooks`` checks the
outputs of the executed notebooks the same way.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ipywidgets as W
import nbformat
import pytest
from lab.lab_support import NOTEBOOKS
from markdown_it import MarkdownIt

from wslab.lab import ANSWER_TAG, answer_check
from wslab.lab.answers import AnswerCheck

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def tagged(cell: nbformat.NotebookNode) -> bool:
    return ANSWER_TAG in cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_every_answer_is_tagged_and_sits_in_a_closed_details(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    answers = [c for c in nb.cells if c.cell_type == "markdown" and tagged(c)]
    assert answers, f"{path.name} has no answer cell"
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        looks_like_answers = bool(re.search(r"^#+\s*Answers|<summary>.*Answers", cell.source,
                                            re.M))
        assert looks_like_answers == tagged(cell), f"{path.name}: {cell.source[:60]!r}"
        # JupyterLab re-opens a hidden markdown cell when it renders it: never rely on it.
        assert not cell.metadata.get("jupyter", {}).get("source_hidden"), path.name
    for cell in answers:
        text = cell.source.strip()
        opening = text.splitlines()[0]
        tag = opening[:opening.index(">") + 1]
        assert tag.startswith("<details") and not re.search(r"\bopen\b", tag), path.name
        assert "<summary>" in opening and "Answers" in opening
        assert text.endswith("</details>"), path.name


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_answer_text_renders_inside_the_details(path: Path) -> None:
    md = MarkdownIt("commonmark", {"html": True})
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and tagged(cell):
            rendered = md.render(cell.source)
            start, end = rendered.index("<details"), rendered.rindex("</details>")
            assert rendered.index("</summary>") < rendered.index("<ol>") < end
            assert start == 0 or not rendered[:start].strip()
            assert not rendered[end + len("</details>"):].strip()  # nothing after it


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_answer_code_computes_only_on_demand(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        hidden = bool(cell.metadata.get("jupyter", {}).get("source_hidden"))
        assert hidden == tagged(cell), f"{path.name}: hidden code must be an answer check"
        if not tagged(cell):
            continue
        body = ast.parse(cell.source).body
        *setup, last = body
        assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), path.name
        assert getattr(last.value.func, "id", "") == "answer_check", path.name
        for node in setup:  # imports and the check's definition: nothing runs
            assert isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef), (
                path.name, ast.dump(node)[:80])


def test_answer_check_is_closed_and_runs_only_when_asked() -> None:
    calls: list[int] = []

    def check() -> str:
        calls.append(1)
        print("the numbers")
        return "a result"

    box = answer_check(check, "a test")
    assert isinstance(box, AnswerCheck) and isinstance(box, W.Accordion)
    assert box.selected_index is None  # closed
    assert box.titles == ("Answer check: a test",)
    assert "wslab-answer" in box._dom_classes
    assert calls == [] and box.output.outputs == ()
    assert box.button.tooltip and box.button.layout.width == "auto"
    box.run()
    assert calls == [1]
    assert not box.button.disabled


def test_answer_check_shows_nothing_in_voila(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOILA_KERNEL_ID", "0b6f")
    assert answer_check(lambda: None) is None


def test_readme_says_what_marks_an_answer() -> None:
    text = (NOTEBOOKS / "README.md").read_text()
    assert "What marks an answer" in text and f"`{ANSWER_TAG}`" in text
    assert "<details>" in text and "wslab-answer" in text
