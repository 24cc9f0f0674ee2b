"""Plain-words reasons for a recommendation: what it is, what it saves, what it costs.

What lives here: :func:`describe_config` (a config row in one phrase), :func:`feasible` and
:func:`infeasible` (the explanation lines of a recommendation: anything that reads as
:class:`Explainable`, which :class:`~wslab.tune.recommend.Recommendation` does; the type is
stated here, by what the wording reads, so this module never imports ``recommend``, which
imports it),
:func:`policy_lines` (the chosen config's policy variants against ``always``, and why),
:func:`left_out_lines` (what the rows the client population cannot negotiate would have
saved), and the metric labels and units every printed figure uses. Every number comes from
the recommendation's own tables; nothing here computes a metric.

What must not live here: choosing, comparing or simulating; printing; I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from wslab.priority import PRIORITIES
from wslab.tune.clients import browser_send_caveat
from wslab.tune.recommend_constraints import CONSTRAINTS


class Explainable(Protocol):
    """What the explanation reads of a recommendation (fields of ``Recommendation``)."""

    @property
    def objective(self) -> str: ...
    @property
    def limits(self) -> Mapping[str, float]: ...
    @property
    def chosen(self) -> Mapping[str, Any] | None: ...
    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def clients(self) -> str: ...
    @property
    def binding(self) -> Mapping[str, Any] | None: ...
    @property
    def relax(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def relax_options(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def comparison(self) -> pd.DataFrame: ...
    @property
    def baseline_sources(self) -> Mapping[str, str]: ...
    @property
    def left_out(self) -> pd.DataFrame: ...
    @property
    def policy(self) -> pd.DataFrame: ...


LABELS = {
    "ws_bytes_per_msg": ("bytes per message", "B"),
    "tcp_bytes_per_msg": ("TCP bytes per message", "B"),
    "latency_p50_ms": ("p50 latency", "ms"),
    "latency_p90_ms": ("p90 latency", "ms"),
    "latency_p95_ms": ("p95 latency", "ms"),
    "latency_p99_ms": ("p99 latency", "ms"),
    "latency_max_ms": ("max latency", "ms"),
    "cpu_us_per_msg": ("CPU per message", "µs"),
    "mem_kib_per_conn": ("memory per connection", "KiB"),
    "compression_ratio": ("compression ratio", ""),
}

_COSTS = ("latency_p99_ms", "cpu_us_per_msg", "mem_kib_per_conn")


def label(metric: str) -> str:
    """The words for a metric column (the column name itself if unknown)."""
    return LABELS.get(metric, (metric, ""))[0]


def fmt(metric: str, value: Any) -> str:
    """A value with its unit, to a precision that suits its size."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    unit = LABELS.get(metric, ("", ""))[1]
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    text = f"{v:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def _get(row: Mapping[Any, Any], key: str, default: Any = None) -> Any:
    value = row.get(key, default)
    if isinstance(value, float) and math.isnan(value):
        return default
    return value


def _n(row: Mapping[Any, Any], key: str) -> str:
    """A config number as written in YAML (``12``, not ``12.0`` from a float column)."""
    value = _get(row, key, "?")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_config(row: Mapping[Any, Any]) -> str:
    """One phrase for a flattened config row, naming only the settings that matter."""
    strategy = str(_get(row, "batching.strategy", "none"))
    if strategy == "none":
        batching = "no batching"
    else:
        hold = "batching.max_hold_ms" if strategy in ("size", "count") else "batching.interval_ms"
        parts = [f"hold ≤ {float(_get(row, hold, 0)):g} ms"]
        if strategy in ("size", "hybrid"):
            parts.append(f"≤ {_n(row, 'batching.max_bytes')} B")
        if strategy in ("count", "hybrid"):
            parts.append(f"≤ {_n(row, 'batching.max_messages')} messages")
        if strategy == "priority":
            parts = [
                f"{cls} {float(_get(row, f'batching.priority_interval_ms.{cls}', 0)):g} ms"
                for cls in PRIORITIES
            ]
        batching = f"{strategy} batching ({', '.join(parts)})"
    algorithm = str(_get(row, "compression.algorithm", "none"))
    if algorithm == "none":
        compression = "no compression"
    elif algorithm == "permessage-deflate":
        extras = [f"level {_n(row, 'compression.level')}"]
        if _get(row, "compression.server_no_context_takeover", False) in (True, "True", "true"):
            extras.append("server no context takeover")
        if _get(row, "compression.client_no_context_takeover", False) in (True, "True", "true"):
            extras.append("client no context takeover")
        compression = (
            f"permessage-deflate {_n(row, 'compression.server_max_window_bits')}/"
            f"{_n(row, 'compression.mem_level')} "
            f"(window bits/memLevel; client window "
            f"{_n(row, 'compression.client_max_window_bits')} bits, "
            f"{', '.join(extras)})"
        )
    else:
        compression = f"{algorithm} level {_n(row, 'compression.zstd_level')}"
    policy = str(_get(row, "compression.policy", "always"))
    if algorithm != "none" and policy != "always":
        threshold = _n(row, "compression.threshold_bytes")
        compression += (f", only messages ≥ {threshold} B" if policy == "threshold"
                         else f", policy {policy}")
    return f"{batching} + {compression}, on link {_get(row, 'link.profile', '?')}"


def _limits_text(limits: Mapping[str, float]) -> str:
    if not limits:
        return "no constraint (none given)"
    return ", ".join(f"{label(CONSTRAINTS[k])} ≤ {fmt(CONSTRAINTS[k], v)}"
                     for k, v in limits.items())


def change_text(metric: str, base: float, chosen: float, pct: float) -> str:
    """``"412 B → 198 B (-51.9 %)"``: a before/after pair with the relative change."""
    rel = "" if not math.isfinite(pct) else f" ({pct:+.1f} %)"
    return f"{fmt(metric, base)} → {fmt(metric, chosen)}{rel}"


def _baseline_line(name: str, what: str, comparison: pd.DataFrame, objective: str) -> str:
    rows = {r["metric"]: r for r in comparison[comparison["baseline"] == name]
            .to_dict(orient="records")}
    lead = objective if objective in rows else "ws_bytes_per_msg"
    head = rows.get(lead)
    if head is None:
        return f"Against {what}: no comparable row."
    pct = float(head["change_pct"])
    verb = "saves" if head["change"] < 0 else "adds" if head["change"] > 0 else "matches"
    amount = f" {abs(pct):.1f} % of" if verb != "matches" and math.isfinite(pct) else ""
    text = (f"Against {what}: {verb}{amount} {label(lead)} "
            f"({fmt(lead, head['base'])} → {fmt(lead, head['chosen'])})")
    costs = [
        f"{label(m)} {change_text(m, r['base'], r['chosen'], r['change_pct'])}"
        for m in _COSTS if m != lead and (r := rows.get(m)) is not None
    ]
    return text + ("; " + "; ".join(costs) if costs else "") + "."


def feasible(rec: Explainable, baselines: Mapping[str, str]) -> list[str]:
    """The explanation of a recommendation that met its constraints."""
    chosen = rec.chosen or {}
    obj = rec.objective
    c = rec.counts
    lines = [
        f"Recommended: {describe_config(chosen)}.",
        f"Why: the lowest {label(obj)} ({fmt(obj, chosen.get(obj))}) among the "
        f"{c['feasible']} of {c['eligible']} intact points that meet {_limits_text(rec.limits)} "
        f"({c['points']} rows in the table, {c['frontier']} on the Pareto frontier"
        + (f", {c['left_out']} left out for {rec.clients} clients" if c.get("left_out") else "")
        + ").",
        "It runs at " + ", ".join(f"{label(m)} {fmt(m, chosen.get(m))}" for m in _COSTS
                                 if m in chosen) + ".",
    ]
    for name, what in baselines.items():
        source = rec.baseline_sources.get(name, "missing")
        if source == "missing":
            lines.append(f"Against {what}: not in the table (give the trace to simulate it).")
        else:
            lines.append(_baseline_line(name, what, rec.comparison, obj))
    b = rec.binding
    if b is None:
        lines.append("No constraint was given: this is the best point by the objective alone.")
    elif b["kind"] == "relaxing":
        m = b["metric"]
        gain = b["next_objective"] - float(chosen[obj])
        lines.append(
            f"Bound by {b['constraint']} ({label(m)} {fmt(m, b['value'])} of "
            f"{fmt(m, b['limit'])} allowed): raising it to {fmt(m, b['next_limit'])} would "
            f"lower {label(obj)} to {fmt(obj, b['next_objective'])} "
            f"({gain / float(chosen[obj]) * 100:+.1f} %); without it the best is "
            f"{fmt(obj, b['best_objective'])} at {fmt(m, b['best_limit'])}."
        )
    else:
        m = b["metric"]
        lines.append(
            f"No single constraint holds it back; closest to its limit is {b['constraint']} "
            f"({label(m)} {fmt(m, b['value'])} of {fmt(m, b['limit'])} allowed)."
        )
    return lines


def infeasible(rec: Explainable) -> list[str]:
    """The answer when no point meets the constraints: what to relax, and by how much."""
    c = rec.counts
    obj = rec.objective
    if c["competing"] == 0 and c.get("left_out", 0):
        return [f"No recommendation for {rec.clients} clients: all {c['left_out']} intact "
                f"points of the table are configs {rec.clients} clients cannot negotiate."]
    if c["eligible"] == 0:
        return [f"No recommendation: none of the {c['competing']} points kept every message "
                "intact (lost, duplicated, reordered or dropped), so none can be recommended."]
    lines = [f"No point meets {_limits_text(rec.limits)} "
             f"({c['eligible']} intact points in the table)."]
    if len(rec.relax) == 1:
        s = rec.relax[0]
        m = s["metric"]
        lines.append(
            f"Relax {s['constraint']} from {fmt(m, s['limit'])} to {fmt(m, s['needed'])} "
            f"(+{fmt(m, s['by'])}, +{s['by_pct']:.1f} %): then the best {label(obj)} is "
            f"{fmt(obj, s['objective'])}."
        )
        for o in rec.relax_options[1:]:
            m = o["metric"]
            lines.append(f"Or relax {o['constraint']} from {fmt(m, o['limit'])} to "
                         f"{fmt(m, o['needed'])} (+{fmt(m, o['by'])}, +{o['by_pct']:.1f} %).")
    else:
        steps = "; ".join(f"{s['constraint']} from {fmt(s['metric'], s['limit'])} to "
                          f"{fmt(s['metric'], s['needed'])} (+{fmt(s['metric'], s['by'])})"
                          for s in rec.relax)
        lines.append(f"No single constraint is enough; relax together: {steps}.")
    return lines


def plain_frames_text(frames_plain: Any, frames: Any, plain_keys: Any) -> str:
    """``"190 of 1,120 frames went uncompressed (media.chunk 160, upload.part 30)"``."""
    try:
        n, total = int(float(frames_plain)), int(float(frames))
    except (TypeError, ValueError):
        return "how many frames went uncompressed is not recorded"
    if n == 0:
        return f"all {total:,} frames were compressed"
    try:
        types = json.loads(plain_keys) if isinstance(plain_keys, str) else {}
    except json.JSONDecodeError:
        types = {}
    ranked = sorted(types.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    shown = ", ".join(f"{k} {int(v):,}" for k, v in ranked[:4])
    more = f", {len(ranked) - 4} more types" if len(ranked) > 4 else ""
    which = f" ({shown}{more})" if shown else ""
    return f"{n:,} of {total:,} frames went uncompressed{which}"


def _policy_name(policy: str, threshold: Any) -> str:
    if policy == "threshold":
        return f"threshold (≥ {_n({'t': threshold}, 't')} B)"
    return policy


def policy_lines(rec: Explainable) -> list[str]:
    """The chosen config's threshold/adaptive variants against ``always``, and why."""
    chosen = rec.chosen or {}
    lines: list[str] = []
    for e in rec.policy.to_dict(orient="records"):
        name = _policy_name(str(e["policy"]), e["threshold_bytes"])
        lead = "The chosen policy" if e["point"] == chosen.get("point") else "Policy"
        why = plain_frames_text(e["frames_plain"], e["frames"], e["plain_keys"])
        if e["bytes_change"] == 0 and float(e["frames_plain"] or 0) == 0:
            cpu = change_text("cpu_us_per_msg", e["always_cpu_us_per_msg"],
                              e["cpu_us_per_msg"], e["cpu_change_pct"])
            lines.append(f"{lead} {name} against always (same config otherwise): the same "
                         f"frames and bytes, since {why}; compression CPU per message {cpu} "
                         "is the same codec work timed twice.")
            continue
        size = change_text("ws_bytes_per_msg", e["always_ws_bytes_per_msg"],
                           e["ws_bytes_per_msg"], e["bytes_change_pct"])
        cpu = change_text("cpu_us_per_msg", e["always_cpu_us_per_msg"], e["cpu_us_per_msg"],
                          e["cpu_change_pct"])
        lines.append(f"{lead} {name} against always (same config otherwise): bytes per "
                     f"message {size}, compression CPU per message {cpu}: {why}.")
    policy = str(chosen.get("compression.policy", "always"))
    if (not lines and chosen.get("compression.algorithm") not in (None, "none")
            and policy in ("threshold", "adaptive")):
        why = plain_frames_text(chosen.get("frames_plain"), chosen.get("frames"),
                                chosen.get("plain_keys"))
        name = _policy_name(policy, chosen.get("compression.threshold_bytes"))
        lines.append(f"The chosen policy {name}: {why} (the table has no 'always' twin to "
                     "set beside it).")
    return lines


_BYTES = ("ws_bytes_per_msg", "tcp_bytes_per_msg")


def _broken(rec: Explainable, row: Mapping[str, Any]) -> str:
    """``"memory per connection 1,400 KiB of 64.0 KiB allowed"`` for each limit it breaks."""
    parts = []
    for name, limit in rec.limits.items():
        metric = CONSTRAINTS[name]
        value = _get(row, metric)
        if value is not None and float(value) > limit:
            parts.append(f"{label(metric)} {fmt(metric, value)} of {fmt(metric, limit)} "
                         "allowed")
    return "; ".join(parts)


def _gain(obj: str, pct: float) -> str:
    if obj in _BYTES:
        return f"saved a further {pct:.1f} % of {label(obj)}"
    return f"lowered {label(obj)} by a further {pct:.1f} %"


def left_out_lines(rec: Explainable) -> list[str]:
    """What the rows the client population cannot negotiate would have given."""
    obj = rec.objective
    who = f"{rec.clients} clients"
    lines: list[str] = []
    for r in rec.left_out.to_dict(orient="records"):
        best, best_any = r["best"], r["best_any"]
        cannot = f"{rec.clients.capitalize()}s cannot {r['cannot']}."
        count = f"{int(r['rows'])} config{'s' if int(r['rows']) != 1 else ''}"
        if best is None and best_any is not None:
            pct = float(r["saving_any_pct"])
            than = (f", {pct:.1f} % below the choice" if rec.chosen is not None
                    and math.isfinite(pct) and pct > 0 else "")
            lines.append(f"Left out for {who}: {count}, none within the constraints; the "
                         f"best, {describe_config(best_any)}, reaches {label(obj)} "
                         f"{fmt(obj, r['value_any'])}{than} but needs "
                         f"{_broken(rec, best_any)}. {cannot}")
        elif best is None:
            lines.append(f"Left out for {who}: {count}. {cannot}")
        elif rec.chosen is None:
            lines.append(f"Left out for {who}: {describe_config(best)} would meet the "
                         f"constraints ({label(obj)} {fmt(obj, r['value'])}). {cannot}")
        elif r["saving"] > 0:
            lines.append(f"Left out for {who}: {describe_config(best)} would have "
                         f"{_gain(obj, float(r['saving_pct']))} "
                         f"({fmt(obj, r['chosen_value'])} → {fmt(obj, r['value'])}) under the "
                         f"same constraints. {cannot}")
        else:
            lines.append(f"Left out for {who}: {count}; the best of them under these "
                         f"constraints ({label(obj)} {fmt(obj, r['value'])}) does not beat "
                         f"the choice. {cannot}")
    chosen = rec.chosen
    rules = set(rec.left_out["rule"]) if not rec.left_out.empty else set()
    if "client_window" in rules and not rec.counts.get("deflate_competing"):
        # Every deflate row was left out for its client window: the sweep never tried one
        # a browser population can be held to.
        lines.append("To weigh permessage-deflate settings browsers can be held to, sweep with "
                     "compression.client_max_window_bits 15 (wslab sweep and wslab demo do "
                     "with --clients browser).")
    if rec.clients == "browser" and chosen is not None:
        c2s = chosen.get("c2s_messages")
        caveat = browser_send_caveat(chosen)
        if caveat is not None and (c2s is None or float(c2s) > 0):
            lines.append(caveat)
    return lines
