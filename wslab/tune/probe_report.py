"""A probe report (``wslab probe --json`` / ``-o``) as tidy rows, for the terminal and the page.

What lives here: :func:`matrix_rows`, :func:`behaviour_rows`, :func:`advice_rows`,
:func:`diff_rows`, :func:`headline` and :func:`probe_parts` (the probe section of the
HTML report as headed notes and tables). The command line prints the same rows with rich,
``wslab.tune.report`` renders :func:`probe_parts` as HTML. What must not live here:
probing, HTML or rich markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SHORT = {"server_no_context_takeover": "s_nct", "client_no_context_takeover": "c_nct",
         "server_max_window_bits": "s_bits", "client_max_window_bits": "c_bits",
         "permessage-deflate": "pmd"}
"""Short names for the matrix table (its legend: :data:`LEGEND`)."""
LEGEND = ("pmd permessage-deflate, s_/c_bits server_/client_max_window_bits, s_/c_nct "
          "server_/client_no_context_takeover; agreed: server/client window bits and which "
          "side resets its window per message (s, c)")


def short(text: str) -> str:
    """``text`` with the RFC 7692 parameter names shortened (:data:`SHORT`)."""
    for long, brief in SHORT.items():
        text = text.replace(long, brief)
    return text


def _agreed_text(agreed: dict[str, Any] | None) -> str:
    if not agreed:
        return "-"
    if "server_max_window_bits" in agreed:
        resets = "+".join(side[0] for side in ("server", "client")
                          if agreed[f"{side}_no_context_takeover"])
        return (f"{agreed['server_max_window_bits']}/{agreed['client_max_window_bits']}"
                + (f" reset {resets}" if resets else ""))
    return ", ".join(f"{k}={v}" for k, v in agreed.items() if v is not None)


def matrix_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row per offer: what was sent back and agreed, and the rules it broke."""
    rows = []
    for row in report.get("matrix") or ():
        answer = row.get("answer") or "-"
        outcome = row["outcome"] + (f" {row['status']}" if row["outcome"] == "refused" else "")
        flags = "; ".join(f"{v['check']} ({v['section']})" for v in row["violations"])
        rows.append({"offer": short(row["offer"]), "outcome": outcome,
                     "answer": short(answer).removeprefix("pmd; "),
                     "agreed": _agreed_text(row.get("agreed")),
                     "flags": flags or short(row.get("note") or "")})
    return rows


def behaviour_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row per behaviour probe: seen or not, and the finding in words."""
    rows = []
    for name, result in (report.get("behaviour") or {}).items():
        note = result.get("note", "")
        if name == "trace" and result.get("observed"):
            lat = result["latency_ms"]
            predicted = (result.get("predicted") or {}).get("compression_ratio")
            ratio = result["compression_ratio"]
            note = (f"{result['messages']} messages: p50 {lat['p50']:.2f} / p95 "
                    f"{lat['p95']:.2f} / p99 {lat['p99']:.2f} ms; compression ratio "
                    f"{ratio:.3f} measured, "
                    + (f"{predicted:.3f} simulated" if predicted is not None else
                       "no simulation"))
        rows.append({"probe": name.replace("_", " "),
                     "seen": "yes" if result.get("observed") else "no", "finding": note})
    return rows


def advice_rows(advice: dict[str, Any]) -> list[dict[str, Any]]:
    """Have against recommended, one row per metric."""
    return [{"metric": r["metric"], "have": r["have"], "recommended": r["recommended"]}
            for r in advice.get("table") or ()]


def diff_rows(advice: dict[str, Any]) -> list[dict[str, Any]]:
    """The knobs whose value differs, have against recommended."""
    return [{"field": r["field"], "have": r["have"], "recommended": r["recommended"]}
            for r in advice.get("diff") or () if r["differs"]]


def headline(report: dict[str, Any]) -> list[str]:
    """The lines that open a probe's section: target, handshake, verdict."""
    hs = report.get("handshake") or {}
    status = hs.get("status") or "-"
    lines = [f"{report['target']}: HTTP {status} "
             f"({hs.get('failure') or hs.get('reason') or ''}), server "
             f"{hs.get('server') or 'unnamed'}, probed in {report.get('seconds', 0):.1f} s",
             f"offered {hs.get('offered')!s}; answered {hs.get('extensions') or '-'}; "
             f"subprotocols offered {', '.join(hs.get('subprotocols_offered') or []) or '-'}, "
             f"chosen {hs.get('subprotocol') or '-'}"]
    problems = report.get("problems") or []
    lines.append(f"{len(problems)} problem(s) found" if problems else "no problem found")
    return lines


@dataclass
class Part:
    """One heading with its notes and an optional table."""

    heading: str
    notes: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None


def probe_parts(report: dict[str, Any]) -> list[Part]:
    """The probe section of the HTML report."""
    parts = [Part("Probe: " + str(report.get("target")), headline(report))]
    if report.get("matrix"):
        parts.append(Part("Probe: offers and answers (RFC 7692, x-wslab-zstd)",
                          ["Each offer on its own connection; flags name the rule an "
                           "answer broke and its section.", LEGEND],
                          pd.DataFrame.from_records(matrix_rows(report))))
    if report.get("behaviour"):
        parts.append(Part("Probe: what the server does", [],
                          pd.DataFrame.from_records(behaviour_rows(report))))
    advice = report.get("advice")
    if advice:
        notes = [advice.get("assumed", "")]
        if advice.get("export_command"):
            notes.append(f"export for {advice['stack']}: {advice['export_command']}")
        parts.append(Part(f"Probe: have vs recommended ({advice.get('messages')} messages of "
                          f"{advice.get('trace')}, link {advice.get('link')})", notes,
                          pd.DataFrame.from_records(advice_rows(advice))))
        diff = diff_rows(advice)
        if diff:
            shown = [{k: "-" if v is None else str(v) for k, v in row.items()} for row in diff]
            parts.append(Part("Probe: config diff", [], pd.DataFrame.from_records(shown)))
    problems = report.get("problems") or []
    if problems:
        parts.append(Part("Probe: problems", problems))
    return parts
