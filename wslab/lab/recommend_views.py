"""What the recommend/export panel says in words and shows as files.

What lives here: the words of the controls (:data:`LIMIT_STEPS` and their readouts,
:data:`CLIENT_LABELS`, :data:`OBJECTIVES`, :data:`NEEDS`: what each button waits for),
:func:`explanation_html` (the recommendation's reasons, headed by what
to relax when nothing meets the constraints), :func:`defaults_table` (the chosen config
against the library defaults), :func:`policy_table` (the chosen config under each
compression policy against ``always``) and :class:`ExportPreview` (a target dropdown, a
file dropdown and a read-only text area over the files ``wslab.tune.export.render`` made
for the chosen config). What must not live here: recommending, explaining or rendering
(``wslab.tune``), the panel's widgets (``recommend.py``), its jobs and figures
(``recommend_jobs.py``).

| view          | before the sweep      | nothing feasible                | a choice            |
|---------------|-----------------------|---------------------------------|---------------------|
| explanation   | :data:`NO_SWEEP`      | what to relax, then the reasons | the reasons         |
| defaults      | empty                 | empty                           | chosen vs defaults  |
| policy        | empty                 | empty                           | variants, if swept  |
| preview       | "nothing to export"   | "no config meets"               | the selected file   |
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W

from wslab.tune.recommend import Recommendation
from wslab.tune.recommend_explain import fmt, label, plain_frames_text

from .figures import stat_table

NO_LIMIT = math.inf
"""A constraint slider's top step: no bound at all."""
LIMIT_STEPS: dict[str, tuple[float, ...]] = {
    "max_p99_ms": (10, 20, 30, 50, 75, 100, 150, 200, 250, 300, 500, 1000, NO_LIMIT),
    "max_kib_per_conn": (0, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, NO_LIMIT),
    "max_cpu_us_per_msg": (0, 1, 2, 3, 5, 7, 10, 15, 20, 50, 100, NO_LIMIT),
}
CLIENT_LABELS = {
    "browser": "browser: no zstd",
    "custom": "custom: zstd too",
}
"""What the clients dropdown says for each population (its values are ``CLIENTS``)."""
DEFAULT_LIMITS = {"max_p99_ms": 250.0, "max_kib_per_conn": 64.0, "max_cpu_us_per_msg": 50.0}
NEEDS = {"Validate live": "choice", "Export all": "choice", "Write report": "sweep"}
"""What each button needs before it applies: a sweep, or a config chosen from one."""
OBJECTIVES = ("ws_bytes_per_msg", "tcp_bytes_per_msg", "latency_p99_ms", "latency_p95_ms",
              "latency_p50_ms", "cpu_us_per_msg", "mem_kib_per_conn")


def limit_value(value: float) -> float | None:
    """A constraint slider's value as a bound (``None``: no limit)."""
    return None if math.isinf(value) else float(value)


def limit_label(value: float, unit: str) -> str:
    """A constraint slider's readout: ``"250 ms"``, ``"no limit"``."""
    return "no limit" if math.isinf(value) else f"{value:g} {unit}"


NO_SWEEP = ("<i>No sweep yet: press <b>Run sweep</b> (or call "
            "<code>panel.sweep()</code>).</i>")
"""The explanation before any sweep."""


def preview_note(swept: bool) -> str:
    """What the preview shows when there is no file to show."""
    return "# no config meets the constraints" if swept else "# nothing to export yet"


def explanation_html(rec: Recommendation) -> str:
    """The reasons as a list; when nothing is feasible, what to relax above them."""
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in rec.explanation)
    advice = ""
    if not rec.feasible:
        steps = "; ".join(
            f"{label(s['metric'])} limit from {fmt(s['metric'], s['limit'])} to "
            f"{fmt(s['metric'], s['needed'])}" for s in rec.relax)
        advice = ("<div class='wslab-relax' style='background:#fff3cd;padding:6px'>"
                  f"<b>Nothing meets these constraints.</b> Relax: "
                  f"{html.escape(steps or 'every constraint (no intact point)')}</div>")
    return f"{advice}<ul>{lines}</ul>"


def defaults_table(rec: Recommendation, pinned: Mapping[Any, Any] | None = None) -> str:
    """The chosen config's figures beside the library defaults' ("" when none chosen).

    With ``pinned`` (a pinned choice's row), its figures go in a column between them.
    """
    rows: list[tuple[str, ...]] = []
    if rec.feasible:
        cmp = rec.comparison[rec.comparison["baseline"] == "defaults"]
        for _, r in cmp.iterrows():
            metric = r["metric"]
            mine = (fmt(metric, pinned.get(metric)),) if pinned is not None else ()
            rows.append((label(metric), fmt(metric, r["chosen"]), *mine,
                         fmt(metric, r["base"])))
    headers = ("", "recommended", *(("pinned",) if pinned is not None else ()),
               "library defaults")
    return stat_table(rows, headers=headers)


def _policy_name(policy: str, threshold: Any) -> str:
    if policy == "threshold":
        try:
            return f"threshold (\u2265 {int(float(threshold)):,} B)"
        except (TypeError, ValueError):
            return "threshold"
    return policy


def policy_table(rec: Recommendation) -> str:
    """The chosen config's threshold/adaptive variants against always ("" if none).

    One column per policy (the chosen one marked), always last; under it, which message
    types each variant sent uncompressed.
    """
    if rec.policy.empty:
        return ""
    entries = rec.policy.to_dict(orient="records")
    chosen = rec.chosen or {}
    point = chosen.get("point")
    chosen_always = str(chosen.get("compression.policy", "")) == "always"

    def head(name: str, mine: bool) -> str:
        return f"policy {name}" + (" (chosen)" if mine else "")

    headers = ["", *(head(_policy_name(str(e["policy"]), e["threshold_bytes"]),
                          e["point"] == point) for e in entries),
               head("always", chosen_always)]
    first = entries[0]

    def frames(e: Mapping[Any, Any]) -> str:
        try:
            return f"{int(float(e['frames_plain'])):,} of {int(float(e['frames'])):,}"
        except (TypeError, ValueError):
            return "n/a"

    rows = [
        ["bytes per message", *(fmt("ws_bytes_per_msg", e["ws_bytes_per_msg"]) for e in entries),
         fmt("ws_bytes_per_msg", first["always_ws_bytes_per_msg"])],
        ["compress CPU per message",
         *(fmt("cpu_us_per_msg", e["cpu_us_per_msg"]) for e in entries),
         fmt("cpu_us_per_msg", first["always_cpu_us_per_msg"])],
        ["frames sent uncompressed", *(frames(e) for e in entries), "0"],
    ]
    notes = " ".join(
        f"Policy {_policy_name(str(e['policy']), e['threshold_bytes'])}: "
        f"{plain_frames_text(e['frames_plain'], e['frames'], e['plain_keys'])}."
        for e in entries)
    return ("<b>the chosen config under each compression policy</b>"
            + stat_table(rows, headers=headers)
            + f"<p class='wslab-policy-why'>{html.escape(notes)} Compress CPU is measured on "
              "this machine: with the same frames compressed, a difference is timing noise."
              "</p>")


class ExportPreview:
    """Every export target's files, one shown at a time.

    Attributes:
        target: The target dropdown.
        file: The dropdown of the target's files.
        text: The selected file's text (read-only).

    Args:
        targets: The targets to choose from.
        layout: The text area's layout.
    """

    def __init__(self, targets: Sequence[str], layout: Any) -> None:
        self.target = W.Dropdown(options=list(targets), description="target",
                                 layout=W.Layout(width="260px"),
                                 tooltip="the server or proxy whose config files are shown")
        self.file = W.Dropdown(options=[], description="file", layout=W.Layout(width="320px"),
                               tooltip="which of the target's files is shown below")
        self.text = W.Textarea(disabled=True, layout=layout,
                               tooltip="the selected file, as Export all writes it")
        self._files: dict[str, dict[str, str]] = {}
        self._note = preview_note(False)
        self.target.observe(lambda _c: self._show(), names="value")
        self.file.observe(lambda _c: self._show(keep_file=True), names="value")

    def show(self, files: dict[str, dict[str, str]], note: str, *,
             keep_file: bool = False) -> None:
        """Show these files (per target, name -> text); ``note`` when a target has none.

        Args:
            keep_file: Keep the selected file if the target still has one of that name.
        """
        self._files, self._note = files, note
        self._show(keep_file=keep_file)

    def select(self, target: str, file: str | None = None) -> str:
        """Select ``target``'s file (its first by default); return its text."""
        self.target.value = target
        if file is not None:
            self.file.value = file
        return str(self.text.value)

    def _show(self, *, keep_file: bool = False) -> None:
        files = self._files.get(self.target.value, {})
        names = list(files)
        if list(self.file.options) != names:
            current = self.file.value
            self.file.options = names
            if names:
                self.file.value = current if keep_file and current in names else names[0]
        self.text.value = files.get(self.file.value, "") if names else self._note
