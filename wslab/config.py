"""``TuningConfig``: the one configuration that flows through every layer.

What lives here: the four sections (``batching``, ``compression``, ``scaling``, ``link``),
their defaults, their value ranges, and loading/saving as YAML or JSON. Every field name and
default is part of the contract in DESIGN.md section 4a; the defaults are the websockets
library's own where it has one. Validation errors become :class:`wslab.errors.ConfigError`
naming the field (``compression.server_max_window_bits``) and the allowed range.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wslab.errors import ConfigError

Strategy = Literal["none", "time", "size", "count", "hybrid", "priority"]
Envelope = Literal["auto", "json-array", "ndjson", "length-prefixed"]
Algorithm = Literal["none", "permessage-deflate", "zstd-stream", "zstd-dict"]
Policy = Literal["never", "always", "threshold", "adaptive"]
Broker = Literal["memory", "redis"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PriorityIntervals(_Section):
    """Per-class hold time for the ``priority`` batching strategy, in milliseconds."""

    critical: float = Field(0.0, ge=0, le=10_000)
    normal: float = Field(16.0, ge=0, le=10_000)
    background: float = Field(250.0, ge=0, le=60_000)


class BatchingConfig(_Section):
    """How messages are grouped into frames."""

    strategy: Strategy = "none"
    interval_ms: float = Field(16.0, ge=0, le=10_000, description="longest hold, ms")
    max_bytes: int = Field(16384, ge=1, le=64 * 1024 * 1024)
    max_messages: int = Field(64, ge=1, le=100_000)
    envelope: Envelope = "auto"
    priority_interval_ms: PriorityIntervals = Field(default_factory=PriorityIntervals)
    background_queue_limit: int = Field(
        10_000, ge=1, description="background messages held at most; overflow is counted"
    )


class CompressionConfig(_Section):
    """Which compression, with which parameters, applied to which messages."""

    algorithm: Algorithm = "permessage-deflate"
    server_max_window_bits: int = Field(12, ge=9, le=15)
    client_max_window_bits: int = Field(12, ge=8, le=15)
    mem_level: int = Field(5, ge=1, le=9)
    level: int = Field(6, ge=-1, le=9)
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    policy: Policy = "always"
    threshold_bytes: int = Field(0, ge=0)
    zstd_level: int = Field(3, ge=-7, le=22)
    zstd_dict_bytes: int = Field(16384, ge=256, le=1 << 20)


class ScalingConfig(_Section):
    """Connection limits, heartbeat and buffering of the live server."""

    max_connections: int = Field(10000, ge=1)
    pending_queue: int = Field(100, ge=0)
    pending_timeout_s: float = Field(10.0, ge=0)
    heartbeat_interval_s: float | None = Field(20.0, gt=0)
    heartbeat_timeout_s: float | None = Field(20.0, gt=0)
    workers: int = Field(1, ge=1, le=64)
    broker: Broker = "memory"
    max_size: int = Field(1048576, ge=1)
    max_queue: int = Field(16, ge=1)
    write_limit: int = Field(32768, ge=1)


class LinkConfig(_Section):
    """The network link between server and clients: a named profile."""

    profile: str = "loopback"


class TuningConfig(_Section):
    """Everything wslab can tune, in four sections."""

    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "config") -> TuningConfig:
        """Validate a plain mapping; errors name the field and the allowed values."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_describe(exc)}") from None

    @classmethod
    def load(cls, path: str | Path) -> TuningConfig:
        """Read a YAML or JSON file (safe loading: no value is ever evaluated)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from None
        try:
            data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: "
                              f"{str(exc).splitlines()[0]}") from None
        return cls.from_dict(data, where=str(p))

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping, the same shape as the YAML file."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """YAML text that :meth:`load` reads back to an equal config."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write YAML (or JSON for a ``.json`` path) atomically."""
        p = Path(path)
        text = json.dumps(self.to_dict(), indent=2) if p.suffix == ".json" else self.to_yaml()
        tmp = p.with_name(p.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)

    def updated(self, changes: dict[str, Any]) -> TuningConfig:
        """A copy with dotted fields replaced, e.g. ``{"batching.interval_ms": 5}``."""
        data = self.to_dict()
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise ConfigError(f"unknown config field {dotted!r}")
                node = node[key]
            if leaf not in node:
                raise ConfigError(f"unknown config field {dotted!r}")
            node[leaf] = value
        return TuningConfig.from_dict(data)

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """The JSON Schema of the config file."""
        return TuningConfig.model_json_schema()


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        ctx = err.get("ctx") or {}
        if "expected" in ctx:
            msg = f"must be one of {ctx['expected']}"
        parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
    return "; ".join(parts)
