"""Canonical configs: one form for every set of configs that behave the same.

What lives here: the rules saying which ``batching`` and ``compression`` fields can change
what a config does under which settings (the tables below), :func:`canonical` (a
:class:`TuningConfig` with every field that cannot matter reset to its default and every
value alias replaced), :func:`canonical_key`, :func:`canonical_point` (a sweep point
without the fields that cannot matter) and :func:`plan_points`, which folds a sweep's
requested points into one planned simulation per canonical config. Sweeps simulate and list
each canonical config once (``sweep.py``, ``optimise.py``).

What must not live here: simulating, choosing, I/O. The tables describe the behaviour of
``wslab/batching.py`` (which limits each strategy uses), ``wslab/codecs/factory.py`` (which
fields each codec reads) and ``wslab/selector.py`` (which policy reads ``threshold_bytes``);
``tests/tune/test_canonical.py`` checks every cell against the simulator itself.

Compression: which other fields can matter, per ``compression.algorithm`` (wbits: both
window bits; takeover: both ``*_no_context_takeover``; mem/level: ``mem_level`` and
``level``; zstd: ``zstd_level`` and ``zstd_window_log``; dict bytes: ``zstd_dict_bytes``)

| algorithm            | wbits | mem/level | takeover | zstd | dict bytes | policy |
|----------------------|-------|-----------|----------|------|------------|--------|
| none                 | -     | -         | -        | -    | -          | -      |
| permessage-deflate   | yes   | yes       | yes      | -    | -          | yes    |
| zstd-stream          | -     | -         | -        | yes  | -          | yes    |
| zstd-dict            | -     | -         | -        | yes  | yes        | yes    |

and, where the policy matters, per ``compression.policy``

| policy    | threshold_bytes                                                           |
|-----------|---------------------------------------------------------------------------|
| never     | -                                                                         |
| always    | -                                                                         |
| threshold | yes; 0 compresses every frame, which is ``always``                        |
| adaptive  | yes, a floor; values up to the selector's ``min_bytes`` are one floor (0) |

Batching: which other fields can matter, per ``batching.strategy`` (``wslab/batching.py``;
interval: ``interval_ms``; bytes/msgs: ``max_bytes``/``max_messages``; hold:
``max_hold_ms``, the maximum hold of the strategies without an interval; classes:
``priority_interval_ms``; queue: ``envelope`` and ``background_queue_limit``)

| strategy  | interval | bytes | msgs | hold | classes | queue |
|-----------|----------|-------|------|------|---------|-------|
| none      | -        | -     | -    | -    | -       | -     |
| time      | yes      | -     | -    | -    | -       | yes   |
| size      | -        | yes   | -    | yes  | -       | yes   |
| count     | -        | -     | yes  | yes  | -       | yes   |
| hybrid    | yes      | yes   | yes  | -    | -       | yes   |
| priority  | -        | yes   | yes  | -    | yes     | yes   |

Value aliases: ``compression.level`` -1 is zlib's ``Z_DEFAULT_COMPRESSION``, which zlib
defines as level 6.

``algorithm`` and ``strategy`` always matter; ``scaling`` and ``link`` are left as they are.
``policy: never`` keeps its compression fields: the extension is still negotiated, the
peer's messages are still decompressed (its memory counts) and the export still says so.
A field that cannot matter is reset to ``TuningConfig``'s own default, so the canonical
form does not depend on the base config a sweep started from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wslab.config import TuningConfig
from wslab.selector import CompressionSelector

_DEFLATE = ("server_max_window_bits", "client_max_window_bits", "mem_level", "level",
            "server_no_context_takeover", "client_no_context_takeover")

ALGORITHM_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "permessage-deflate": (*_DEFLATE, "policy"),
    "zstd-stream": ("zstd_level", "zstd_window_log", "policy"),
    "zstd-dict": ("zstd_level", "zstd_window_log", "zstd_dict_bytes", "policy"),
}
"""``compression.algorithm`` -> the other compression fields that can matter under it."""

POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "never": (),
    "always": (),
    "threshold": ("threshold_bytes",),
    "adaptive": ("threshold_bytes",),
}
"""``compression.policy`` (where the policy matters) -> the fields it reads."""

_QUEUED = ("envelope", "background_queue_limit")

STRATEGY_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "time": ("interval_ms", *_QUEUED),
    "size": ("max_bytes", "max_hold_ms", *_QUEUED),
    "count": ("max_messages", "max_hold_ms", *_QUEUED),
    "hybrid": ("interval_ms", "max_bytes", "max_messages", *_QUEUED),
    "priority": ("max_bytes", "max_messages", "priority_interval_ms", *_QUEUED),
}
"""``batching.strategy`` -> the other batching fields that can matter under it."""

LEVEL_ALIASES: dict[int, int] = {-1: 6}
"""``compression.level`` values that zlib treats as another level."""

_DEFAULTS = TuningConfig().to_dict()


def _adaptive_floor() -> int:
    """Payloads the adaptive policy never compresses, whatever ``threshold_bytes`` says."""
    return CompressionSelector("adaptive").min_bytes


def relevant_fields(config: TuningConfig) -> frozenset[str]:
    """The dotted ``batching``/``compression`` fields that can matter for ``config``.

    ``batching.strategy`` and ``compression.algorithm`` always do; the rest follow the
    module's tables (``batching.priority_interval_ms`` stands for its three classes).
    """
    b, c = config.batching, config.compression
    out = {"batching.strategy", "compression.algorithm"}
    out.update(f"batching.{f}" for f in STRATEGY_FIELDS[b.strategy])
    compression = ALGORITHM_FIELDS[c.algorithm]
    out.update(f"compression.{f}" for f in compression)
    if "policy" in compression:
        out.update(f"compression.{f}" for f in POLICY_FIELDS[c.policy])
    return frozenset(out)


def _section(data: dict[str, Any], section: str, keep: Iterable[str]) -> None:
    kept = set(keep)
    for name in data[section]:
        if name not in kept:
            data[section][name] = _DEFAULTS[section][name]


def canonical(config: TuningConfig) -> TuningConfig:
    """``config`` with every field that cannot matter reset and every alias replaced.

    Two configs with the same canonical form send the same frames with the same bytes
    (see the module's tables). Idempotent: ``canonical(canonical(c)) == canonical(c)``.
    """
    data = config.to_dict()
    comp = data["compression"]
    comp["level"] = LEVEL_ALIASES.get(comp["level"], comp["level"])
    if comp["policy"] == "threshold" and comp["threshold_bytes"] == 0:
        comp["policy"] = "always"
    if comp["policy"] == "adaptive" and comp["threshold_bytes"] <= _adaptive_floor():
        comp["threshold_bytes"] = 0
    compression = ALGORITHM_FIELDS[comp["algorithm"]]
    keep = {"algorithm", *compression}
    if "policy" in compression:
        keep.update(POLICY_FIELDS[comp["policy"]])
    _section(data, "compression", keep)
    _section(data, "batching",
             {"strategy", *STRATEGY_FIELDS[data["batching"]["strategy"]]})
    return TuningConfig.from_dict(data, where="canonical config")


def config_key(config: TuningConfig) -> str:
    """A stable text key of a config exactly as it is (no canonicalisation)."""
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def canonical_key(config: TuningConfig) -> str:
    """The key two configs share exactly when their canonical forms are equal."""
    return config_key(canonical(config))


def _dotted(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node


def canonical_point(point: Mapping[str, Any], config: TuningConfig) -> dict[str, Any]:
    """``point`` without the fields that cannot matter for ``config``, values canonical.

    ``config`` is the config the point produced (``base.updated(point)``). A field is kept
    when it, or the group it belongs to (``batching.priority_interval_ms.normal`` belongs
    to ``batching.priority_interval_ms``), can matter; its value is the canonical one
    (``compression.level: -1`` becomes 6). Fields outside ``batching`` and ``compression``
    are kept as given.
    """
    canon = canonical(config)
    relevant = relevant_fields(canon)
    data = canon.to_dict()
    out: dict[str, Any] = {}
    for dotted, value in point.items():
        section = dotted.split(".", 1)[0]
        if section not in ("batching", "compression"):
            out[dotted] = value
            continue
        group = ".".join(dotted.split(".")[:2])
        if group in relevant:
            out[dotted] = _dotted(data, dotted)
    return out


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """One simulation a sweep runs: a canonical config and every point asking for it.

    Attributes:
        point: The first requested point in canonical form (its row's ``point`` column).
        key: :func:`canonical_key` of the config.
        requested: Every requested point that maps onto this config, in request order.
        overrides: The dotted fields that turn the sweep's base config into the canonical
            config exactly (what a worker simulates: ``base.updated(overrides)``).
    """

    point: dict[str, Any]
    key: str
    requested: tuple[dict[str, Any], ...]
    overrides: dict[str, Any] = field(default_factory=dict)


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def overrides_from(base: TuningConfig, config: TuningConfig) -> dict[str, Any]:
    """The dotted fields where ``config`` differs from ``base`` (``base.updated`` of them
    is ``config``)."""
    have = _flat(base.to_dict())
    return {k: v for k, v in _flat(config.to_dict()).items() if have.get(k) != v}


def plan_points(points: Iterable[Mapping[str, Any]], base: TuningConfig) -> list[PlannedPoint]:
    """Fold requested points into one :class:`PlannedPoint` per canonical config.

    Order: by each canonical config's first requested point. Raises
    :class:`wslab.errors.ConfigError` naming the field if a point is not a valid config.
    """
    order: list[str] = []
    first: dict[str, dict[str, Any]] = {}
    overrides: dict[str, dict[str, Any]] = {}
    requested: dict[str, list[dict[str, Any]]] = {}
    for raw in points:
        point = dict(raw)
        config = base.updated(point)
        canon = canonical(config)
        key = config_key(canon)
        if key not in requested:
            order.append(key)
            first[key] = canonical_point(point, config)
            overrides[key] = overrides_from(base, canon)
            requested[key] = []
        requested[key].append(point)
    return [PlannedPoint(first[k], k, tuple(requested[k]), overrides[k]) for k in order]
