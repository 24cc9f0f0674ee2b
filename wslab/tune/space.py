"""Search spaces: which config fields a sweep varies, and over which values.

What lives here: parsing a space from YAML/JSON, checking every field against
``TuningConfig``, and turning it into points (grid or seeded random). Running the points is
``sweep.py``'s business.

A space maps dotted config fields to a dimension:

| form                              | grid        | random                      |
|-----------------------------------|-------------|-----------------------------|
| ``[a, b, c]``                     | each value  | uniform choice              |
| ``{range: [start, stop, step]}``  | start..stop inclusive, by step | uniform choice of those |
| ``{uniform: [lo, hi]}``           | refused     | uniform float               |
| ``{loguniform: [lo, hi]}``        | refused     | log-uniform float           |
| ``{int: [lo, hi]}``               | lo..hi      | uniform integer             |

Example::

    batching.strategy: [none, hybrid]
    batching.interval_ms: {range: [0, 50, 10]}
    compression.server_max_window_bits: {int: [9, 15]}
    link.profile: [4g, slow-3g]
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wslab.config import TuningConfig, read_data_file
from wslab.errors import ConfigError

_KINDS = ("range", "uniform", "loguniform", "int")


@dataclass(frozen=True, slots=True)
class Dimension:
    """One varied field: either a finite list of values or a continuous distribution."""

    field: str
    values: tuple[Any, ...] | None = None
    kind: str = "choice"
    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: random.Random) -> Any:
        """One random value."""
        if self.values is not None:
            return rng.choice(self.values)
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True, slots=True)
class Space:
    """A search space over ``TuningConfig`` fields."""

    dimensions: tuple[Dimension, ...]

    @classmethod
    def load(cls, path: str | Path) -> Space:
        """Read a space from YAML or JSON."""
        return cls.from_dict(read_data_file(path, "space"), where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "space") -> Space:
        """Validate a mapping of dotted fields to dimensions."""
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"{where}: expected a mapping of config fields to values")
        known = _known_fields()
        dims = []
        for name, spec in data.items():
            if name not in known:
                raise ConfigError(f"{where}: unknown config field {name!r}; fields look like "
                                  f"'batching.interval_ms' (see wslab config default)")
            dims.append(_dimension(str(name), spec, where))
        space = cls(tuple(dims))
        for dim in dims:  # each listed value must be a valid config value on its own
            for value in dim.values or (dim.low, dim.high):
                try:
                    TuningConfig().updated({dim.field: value})
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {dim.field}={value!r} is not allowed: "
                                      f"{exc}") from None
        return space

    @property
    def fields(self) -> list[str]:
        """The varied fields, in order."""
        return [d.field for d in self.dimensions]

    def grid_size(self) -> int:
        """Points in the full grid (raises if a dimension is continuous)."""
        return math.prod(len(self._finite(d)) for d in self.dimensions)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the listed values."""
        lists = [self._finite(d) for d in self.dimensions]
        return [dict(zip(self.fields, combo, strict=True)) for combo in itertools.product(*lists)]

    def sample(self, n: int, seed: int = 0) -> list[dict[str, Any]]:
        """``n`` seeded random points (distinct where the space allows)."""
        rng = random.Random(seed)
        points: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(n * 20):
            if len(points) == n:
                break
            point = {d.field: d.sample(rng) for d in self.dimensions}
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                points.append(point)
        return points

    @staticmethod
    def _finite(dim: Dimension) -> tuple[Any, ...]:
        if dim.values is None:
            raise ConfigError(f"{dim.field}: a {dim.kind} distribution has no grid; "
                              "use --mode random or give a list or range")
        return dim.values


def point_key(point: dict[str, Any]) -> str:
    """A stable text key for a point (resuming a sweep matches on it)."""
    return json.dumps(point, sort_keys=True, default=str)


def _known_fields() -> set[str]:
    out: set[str] = set()

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out.add(prefix)

    walk("", TuningConfig().to_dict())
    return out


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: {name}: empty list of values")
        return Dimension(name, tuple(spec))
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _KINDS:
        raise ConfigError(f"{where}: {name}: expected a list, or one of "
                          f"{{{', '.join(k + ': [...]' for k in _KINDS)}}}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not all(isinstance(a, (int, float)) for a in args):
        raise ConfigError(f"{where}: {name}: {kind} takes a list of numbers")
    if kind == "range":
        if len(args) not in (2, 3):
            raise ConfigError(f"{where}: {name}: range takes [start, stop] or [start, stop, step]")
        start, stop = args[0], args[1]
        step = args[2] if len(args) == 3 else 1
        if step <= 0 or stop < start:
            raise ConfigError(
                f"{where}: {name}: empty range {args} (need start <= stop, step > 0)"
            )
        count = math.floor((stop - start) / step + 1e-9) + 1
        values = [start + i * step for i in range(count)]
        if all(isinstance(a, int) for a in args):
            values = [int(v) for v in values]
        else:
            values = [round(float(v), 10) for v in values]
        return Dimension(name, tuple(values), "range")
    if len(args) != 2 or args[0] > args[1]:
        raise ConfigError(f"{where}: {name}: {kind} takes [low, high] with low <= high")
    lo, hi = args
    if kind == "int":
        return Dimension(name, tuple(range(int(lo), int(hi) + 1)), "int")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(f"{where}: {name}: loguniform needs low > 0")
    return Dimension(name, None, kind, float(lo), float(hi))
