"""Where the compression policy changes what is sent: ``adaptive`` and ``threshold`` against
``always``, with everything else the same.

What lives here: :func:`policy_effects` (one row per result row whose policy is
``threshold`` or ``adaptive`` and whose ``always`` twin, the same canonical config with
policy ``always``, is in the same table and mode: bytes and compression CPU per message of
both, the differences, and why: how many frames went uncompressed and of which message
types), :func:`add_policy_columns` (the two differences as columns of a results table) and
:func:`family_effects` (the effects for one config's policy variants). Twins are found by
canonical key (``canonical.py``), so a threshold of 0 is ``always`` and never its own twin.

What must not live here: simulating, wording (``recommend_explain.py``), I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from wslab.errors import WslabError
from wslab.tune.canonical import canonical, canonical_key, config_key
from wslab.tune.recommend_explain import describe_config
from wslab.tune.recommend_pareto import row_config

SELECTIVE = ("threshold", "adaptive")
"""The policies that can leave frames uncompressed on a compressing connection."""

EFFECT_COLUMNS = [
    "point", "mode", "config", "policy", "threshold_bytes",
    "ws_bytes_per_msg", "always_ws_bytes_per_msg", "bytes_change", "bytes_change_pct",
    "cpu_us_per_msg", "always_cpu_us_per_msg", "cpu_change", "cpu_change_pct",
    "frames_plain", "frames", "plain_keys", "family",
]


def plain_types(value: Any) -> dict[str, int]:
    """The ``plain_keys`` cell of a row (compact JSON) as message type -> frames."""
    if isinstance(value, Mapping):
        return {str(k): int(v) for k, v in value.items()}
    if not isinstance(value, str) or not value:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _keys(row: Mapping[str, Any]) -> tuple[str, str | None, str]:
    """``(own canonical key, key of its always version or None, policy)``."""
    config = canonical(row_config(row))
    c = config.compression
    if c.algorithm == "none":
        return config_key(config), None, "none"
    if c.policy == "always":
        return config_key(config), config_key(config), "always"
    return (config_key(config),
            canonical_key(config.updated({"compression.policy": "always"})), c.policy)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]


def _pct(change: float, base: float) -> float:
    return change / base * 100 if base else math.nan


def _number(row: Mapping[str, Any], column: str) -> float:
    value = row.get(column)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def policy_effects(df: pd.DataFrame) -> pd.DataFrame:
    """Every threshold/adaptive row beside its ``always`` twin (same mode), see the module.

    ``bytes_change`` and ``cpu_change`` are this row minus its twin (negative: the
    policy sends fewer bytes or spends less CPU); ``family`` is the twin's canonical key.
    Rows whose config cannot be rebuilt are skipped.
    """
    records = _records(df)
    modes = [str(r.get("mode", "sim")) for r in records]
    keys: list[tuple[str, str | None, str] | None] = []
    for r in records:
        try:
            keys.append(_keys(r))
        except WslabError:
            keys.append(None)
    always: dict[tuple[str, str], dict[str, Any]] = {}
    for r, mode, k in zip(records, modes, keys, strict=True):
        if k is not None and k[2] == "always":
            always.setdefault((mode, k[0]), r)
    out: list[dict[str, Any]] = []
    for r, mode, k in zip(records, modes, keys, strict=True):
        if k is None or k[2] not in SELECTIVE or k[1] is None:
            continue
        twin = always.get((mode, k[1]))
        if twin is None:
            continue
        b, tb = _number(r, "ws_bytes_per_msg"), _number(twin, "ws_bytes_per_msg")
        c, tc = _number(r, "cpu_us_per_msg"), _number(twin, "cpu_us_per_msg")
        out.append({
            "point": r.get("point"), "mode": mode, "config": describe_config(r),
            "policy": k[2], "threshold_bytes": r.get("compression.threshold_bytes"),
            "ws_bytes_per_msg": b, "always_ws_bytes_per_msg": tb, "bytes_change": b - tb,
            "bytes_change_pct": _pct(b - tb, tb),
            "cpu_us_per_msg": c, "always_cpu_us_per_msg": tc, "cpu_change": c - tc,
            "cpu_change_pct": _pct(c - tc, tc),
            "frames_plain": _number(r, "frames_plain"), "frames": _number(r, "frames"),
            "plain_keys": json.dumps(plain_types(r.get("plain_keys")), sort_keys=True,
                                     separators=(",", ":")),
            "family": k[1],
        })
    return pd.DataFrame.from_records(out, columns=EFFECT_COLUMNS)


def add_policy_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``vs_always_bytes_per_msg`` and ``vs_always_cpu_us_per_msg``.

    Each is this row minus its ``always`` twin (see :func:`policy_effects`); missing
    (NaN) where the row's policy is ``always``, compression is off, or no twin was swept.
    """
    effects = policy_effects(df)
    out = df.copy()
    out["vs_always_bytes_per_msg"] = math.nan
    out["vs_always_cpu_us_per_msg"] = math.nan
    if effects.empty or "point" not in df.columns:
        return out
    by_point = {(str(e["mode"]), str(e["point"])): e
                for e in _records(effects)}
    modes = df["mode"].astype(str) if "mode" in df.columns else pd.Series("sim", index=df.index)
    for i, point, mode in zip(df.index, df["point"].astype(str), modes, strict=True):
        e = by_point.get((mode, point))
        if e is not None:
            out.loc[i, "vs_always_bytes_per_msg"] = e["bytes_change"]
            out.loc[i, "vs_always_cpu_us_per_msg"] = e["cpu_change"]
    return out


def family_effects(df: pd.DataFrame, row: Mapping[str, Any]) -> pd.DataFrame:
    """The policy variants of ``row``'s config in ``df`` (same mode), each against always.

    Empty when ``row`` does not compress or the table holds no threshold/adaptive variant
    of it with an ``always`` twin.
    """
    try:
        _own, family, _policy = _keys(row)
    except WslabError:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    effects = policy_effects(df)
    if family is None or effects.empty:
        return effects.iloc[0:0]
    mode = str(row.get("mode", "sim"))
    keep = (effects["family"] == family) & (effects["mode"] == mode)
    return effects[keep.to_numpy()].reset_index(drop=True)
