"""Exercise answers that stay hidden until a reader asks for them.

What lives here: :data:`ANSWER_TAG`, the cell tag every answer cell carries, and
:func:`answer_check`, what an answer's code cell shows: a closed accordion whose button
runs the check and shows what it prints or returns. Nothing runs on *Run All*.

How the notebooks hide answers, and why this way. JupyterLab shows a markdown cell's
source again whenever the cell runs (``inputHidden = false`` for every markdown cell it
renders) and shows a code cell's outputs again whenever it runs, so ``source_hidden`` and
``outputs_hidden`` do not survive *Run All*. What does survive: a code cell's hidden
source, and the state of widgets and HTML the cells produce. So

- an answer's text is a markdown cell tagged ``answer`` whose text sits in a closed
  ``<details>`` element (the reader clicks "Answers" to open it);
- an answer's code is a code cell tagged ``answer`` with its source hidden, whose only
  output is :func:`answer_check`'s closed accordion: the numbers appear when the reader
  presses its button.

A Voila app leaves every cell tagged ``answer`` out, and :func:`answer_check` shows
nothing when it runs in a Voila kernel, so an app never shows an answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ipywidgets as W

ANSWER_TAG = "answer"
"""The cell tag of every answer cell (kept in the ``.py`` pair by jupytext)."""
VOILA_VARIABLES = ("VOILA_KERNEL_ID", "VOILA_BASE_URL", "VOILA_SERVER_URL", "VOILA_PREHEAT")
"""Environment variables Voila sets in the kernels it starts."""


def in_voila() -> bool:
    """True in a kernel that Voila started (an app shows no answers)."""
    return any(os.environ.get(name) for name in VOILA_VARIABLES)


class AnswerCheck(W.Accordion):  # type: ignore[misc]
    """A closed accordion holding a button that runs an answer's check, and its output.

    Attributes:
        button: The button (pressing it calls :meth:`run`).
        output: Where the check's prints and result appear.
    """

    def __init__(self, compute: Callable[[], Any], title: str, button: str) -> None:
        self.compute = compute
        self.output = W.Output()
        self.button = W.Button(
            description=button, icon="play", layout=W.Layout(width="auto"),
            tooltip=f"run the check behind the answers ({title}); takes a few seconds")
        self.button.on_click(lambda _b: self.run())
        super().__init__(children=[W.VBox([self.button, self.output])],
                         titles=(f"Answer check: {title}",), selected_index=None)
        self.add_class(f"wslab-{ANSWER_TAG}")

    def run(self) -> None:
        """Run the check now and show what it prints or returns."""
        from IPython.display import display

        self.output.clear_output()
        self.button.disabled = True
        try:
            with self.output:
                value = self.compute()
                if value is not None:
                    display(value)  # type: ignore[no-untyped-call]
        finally:
            self.button.disabled = False


def answer_check(compute: Callable[[], Any], title: str = "the numbers behind the answers",
                 *, button: str = "Compute") -> AnswerCheck | None:
    """A closed accordion whose button runs ``compute`` and shows its output.

    ``compute`` may print, display, or return something to display. Nothing runs until
    the button is pressed; in a Voila kernel the result is ``None`` (nothing is shown).

    Args:
        compute: The answer's check (a sweep, a table).
        title: The accordion's title ("Answer check: " is put before it).
        button: The button's label.
    """
    if in_voila():
        return None
    return AnswerCheck(compute, title, button)
