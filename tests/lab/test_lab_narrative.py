"""The notebooks' text agrees with the data and the files it talks about (issue 15, item 5).

Issue 15 found prose that did not match what the notebooks show: 02 asked for three latency
curves (critical, normal, background) on the market trace, which has no critical message;
01 spoke of "sensor frames" in the mixed trace, which holds none; 00 said notebooks 04 and
05 did not exist yet. These tests read the markdown of every notebook and check it against
the bundled traces and the notebooks folder, so a later edit that drifts fails here.

How a passage's trace is found: a numbered item (an exercise, or the answer with the same
number) works on the traces it names (``load_trace("x")``, `` `x` trace``, "the x trace"),
with the traces its exercise names carried over to its answer; a passage about the
"bundled" traces speaks of all of them; one that names none works on the notebook's own
trace (the first ``load_trace`` of its code).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import nbformat
import pytest
from lab.lab_support import NOTEBOOKS

from wslab.lab import bundled_names, load_trace

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
PRIORITIES = ("critical", "normal", "background")


@cache
def trace_facts(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """(message types, priorities that occur) of a bundled trace."""
    df = load_trace(name).frame()
    counts = df["priority"].value_counts()
    return (frozenset(str(t) for t in df["type"].unique()),
            frozenset(str(p) for p, n in counts.items() if n > 0))


def named_traces(text: str) -> set[str]:
    names = "|".join(map(re.escape, bundled_names()))
    found = set(re.findall(rf"load_trace\(\"({names})\"\)", text))
    found |= set(re.findall(rf"`?\b({names})\b`?(?:[- ]\w+)?\s+(?:trace|feed)\b", text))
    found |= set(re.findall(rf"\bthe `({names})` trace", text))
    return found


def passages(path: Path) -> list[tuple[str, set[str]]]:
    """(text, traces it works on) for each numbered item and other paragraph of markdown."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    own = re.search(r"load_trace\(\"(\w+)\"\)", code)
    default = {own.group(1)} if own else set()
    by_number: dict[str, set[str]] = {}
    out = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        answer = "answer" in cell.metadata.get("tags", [])
        for block in re.split(r"\n(?=\d+\.\s)|\n\s*\n", cell.source):
            number = re.match(r"(\d+)\.\s", block)
            names = named_traces(block)
            if number and answer:  # an answer works on what its exercise named
                names |= by_number.get(number.group(1), set())
            elif number:
                by_number[number.group(1)] = set(names)
            if re.search(r"\bbundled\b", block):  # speaks of every bundled trace
                names |= set(bundled_names())
            out.append((block, names or default))
    return out


def test_the_trace_finder_reads_the_ways_the_notebooks_name_traces() -> None:
    assert named_traces('`CompressionPanel(load_trace("sensor"))`') == {"sensor"}
    assert named_traces("take the binary sensor trace") == {"sensor"}
    assert named_traces("The market feed has no `critical` messages") == {"market"}
    assert named_traces("(Figures from the `mixed` trace; yours may differ.)") == {"mixed"}
    assert named_traces("a chat room and a game") == set()


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_message_types_named_in_the_text_exist_in_its_trace(path: Path) -> None:
    every = set().union(*(trace_facts(n)[0] for n in bundled_names()))
    for text, traces in passages(path):
        if not traces:
            continue
        types = set().union(*(trace_facts(n)[0] for n in traces))
        for label in set(re.findall(r"`([a-z]+\.[a-z]+)`", text)) & every:
            assert label in types, f"{path.stem}: `{label}` is not in {traces}: {text!r}"
        if re.search(r"\bsensor frames?\b", text):
            assert "sensor.frame" in types, f"{path.stem}: sensor frames in {traces}: {text!r}"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_curves_per_priority_are_asked_of_a_trace_that_has_them(path: Path) -> None:
    """A passage that asks for (or describes) the critical curve works on a trace with
    critical messages; one that says a trace has none is right about it."""
    for text, traces in passages(path):
        for name in re.findall(r"\b(\w+) (?:feed|trace) has no `?(\w+)`? messages", text):
            trace, priority = name
            if trace in bundled_names() and priority in PRIORITIES:
                assert priority not in trace_facts(trace)[1], f"{path.stem}: {text!r}"
        asks = re.search(r"\bthree\b.*\bcurves\b|\bcritical (?:curve|deadline)\b", text, re.S)
        if asks and traces:
            have = set().union(*(trace_facts(n)[1] for n in traces))
            assert set(PRIORITIES) <= have, (
                f"{path.stem}: asks for a curve per priority on {traces} ({sorted(have)}): "
                f"{text!r}")


def test_the_tour_names_only_notebooks_that_exist_and_calls_none_missing() -> None:
    tour = nbformat.read(NOTEBOOKS / "00_tour.ipynb", as_version=4)
    text = "\n".join(c.source for c in tour.cells if c.cell_type == "markdown")
    named = set(re.findall(r"\b(0\d_[a-z_]+[a-z])\b", text))
    assert {p.stem for p in NOTEBOOK_FILES} - {"00_tour"} <= named, "the tour skips one"
    for stem in named:
        assert (NOTEBOOKS / f"{stem}.ipynb").exists(), f"the tour names {stem}"
    assert not re.search(r"(do not|don't|does not|doesn't) exist|not (written )?yet|"
                         r"coming soon|\bto come\b", text, re.I), "the tour calls one missing"
