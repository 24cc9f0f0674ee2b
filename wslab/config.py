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

from wslab.atomic import atomic_write_text
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

    critical: float = Field(
        0.0, ge=0, le=10_000, description="hold for critical messages, ms (0 = send at once)"
    )
    normal: float = Field(16.0, ge=0, le=10_000, description="hold for normal messages, ms")
    background: float = Field(
        250.0, ge=0, le=60_000, description="hold for background messages, ms"
    )


class BatchingConfig(_Section):
    """How messages are grouped into frames."""

    strategy: Strategy = Field("none", description="none | time | size | count | hybrid | priority")
    interval_ms: float = Field(16.0, ge=0, le=10_000, description="longest hold, ms")
    max_bytes: int = Field(
        16384,
        ge=1,
        le=64 * 1024 * 1024,
        description="flush a batch when its payload reaches this many bytes",
    )
    max_messages: int = Field(
        64, ge=1, le=100_000, description="flush a batch when it holds this many messages"
    )
    max_hold_ms: float = Field(
        100.0, ge=0, le=60_000,
        description="longest hold of the size and count strategies, ms (a quiet connection "
                    "sends what waits this long after its oldest message)")
    envelope: Envelope = Field("auto", description="auto | json-array | ndjson | length-prefixed")
    priority_interval_ms: PriorityIntervals = Field(default_factory=PriorityIntervals)
    background_queue_limit: int = Field(
        10_000, ge=1, description="background messages held at most; overflow is counted"
    )


class CompressionConfig(_Section):
    """Which compression, with which parameters, applied to which messages."""

    algorithm: Algorithm = Field(
        "permessage-deflate", description="none | permessage-deflate | zstd-stream | zstd-dict"
    )
    server_max_window_bits: int = Field(
        12, ge=9, le=15, description="LZ77 window of the server compressor, 2^N bytes (9..15)"
    )
    client_max_window_bits: int = Field(
        12, ge=8, le=15, description="LZ77 window of the client compressor, 2^N bytes (8..15)"
    )
    mem_level: int = Field(
        5, ge=1, le=9, description="zlib memLevel: hash table and buffer memory, 1..9"
    )
    level: int = Field(6, ge=-1, le=9, description="zlib level, 0..9 (-1 = zlib default, 6)")
    server_no_context_takeover: bool = Field(
        False, description="server restarts its compressor for every message"
    )
    client_no_context_takeover: bool = Field(
        False, description="client restarts its compressor for every message"
    )
    policy: Policy = Field(
        "always", description="which messages to compress: never | always | threshold | adaptive"
    )
    threshold_bytes: int = Field(
        0, ge=0, description="with policy threshold: compress messages of at least this size"
    )
    zstd_level: int = Field(3, ge=-7, le=22, description="zstd level for zstd-stream and zstd-dict")
    zstd_window_log: int = Field(
        15, ge=10, le=22,
        description="largest zstd window, 2^N bytes; a zstd-stream connection keeps it and "
                    "tables sized by it on both sides (15: ~0.5 MiB compressor + ~0.2 MiB "
                    "decompressor at level 3; the level's own 21 would be ~6 MiB)")
    zstd_dict_bytes: int = Field(
        16384, ge=256, le=1 << 20, description="size of the trained zstd dictionary"
    )


class ScalingConfig(_Section):
    """Connection limits, heartbeat and buffering of the live server."""

    max_connections: int = Field(
        10000, ge=1, description="connections a server accepts before queueing"
    )
    pending_queue: int = Field(
        100, ge=0, description="handshakes waiting for a slot; beyond it: close 1013"
    )
    pending_timeout_s: float = Field(10.0, ge=0, description="longest wait in the pending queue, s")
    heartbeat_interval_s: float | None = Field(
        20.0, gt=0, description="ping interval, s (websockets ping_interval)"
    )
    heartbeat_timeout_s: float | None = Field(
        20.0, gt=0, description="pong wait before closing, s (websockets ping_timeout)"
    )
    workers: int = Field(1, ge=1, le=64, description="server worker processes")
    broker: Broker = Field("memory", description="fan-out across workers: memory | redis")
    max_size: int = Field(
        1048576, ge=1, description="largest message after decompression, bytes (1009 beyond)"
    )
    max_queue: int = Field(
        16, ge=1, description="frames buffered per connection before backpressure"
    )
    write_limit: int = Field(
        32768, ge=1, description="write buffer high-water mark per connection, bytes"
    )
    slow_consumer_timeout_s: float | None = Field(
        30.0, gt=0, description="close a client that has not drained its backlog for this long"
    )


class LinkConfig(_Section):
    """The network link between server and clients: a named profile."""

    profile: str = Field(
        "loopback", description="link profile name (wslab link list) or a custom profile file"
    )


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
        except RecursionError:
            raise ConfigError(f"{where}: nested too deeply") from None

    @classmethod
    def load(cls, path: str | Path) -> TuningConfig:
        """Read a YAML or JSON file (safe loading: no value is ever evaluated)."""
        return cls.from_dict(read_data_file(path, "config"), where=str(path))

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
        atomic_write_text(p, text)

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


def read_data_file(path: str | Path, what: str) -> Any:
    """Parse a YAML (or ``.json``) file safely; errors name the file and what it is."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: {what} file is not UTF-8 text") from None
    try:
        return json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{p}: {what} is nested too deeply") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise ConfigError(f"{p}: not valid {kind}: {str(exc).splitlines()[0]}") from None


def default_yaml() -> str:
    """The default config as YAML, every field preceded by a comment saying what it is."""
    lines = ["# wslab TuningConfig (defaults; the websockets library's own where it has one)"]
    _emit(TuningConfig(), lines, indent="")
    return "\n".join(lines) + "\n"


def _emit(model: BaseModel, lines: list[str], indent: str) -> None:
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if info.description:
            lines.append(f"{indent}# {info.description}")
        if isinstance(value, BaseModel):
            lines.append(f"{indent}{name}:")
            _emit(value, lines, indent + "  ")
        else:
            dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()
            lines.append(f"{indent}{dumped.strip('{}')}")
