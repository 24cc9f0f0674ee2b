"""TuningConfig: defaults from the contract, YAML/JSON round trips, errors that name fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wslab.config import TuningConfig, default_yaml
from wslab.errors import ConfigError


def test_defaults_are_the_contract() -> None:
    c = TuningConfig()
    assert c.batching.strategy == "none"
    assert c.batching.interval_ms == 16
    assert c.batching.priority_interval_ms.background == 250
    assert c.compression.server_max_window_bits == 12
    assert c.compression.client_max_window_bits == 12
    assert c.compression.mem_level == 5
    assert c.scaling.max_size == 1048576
    assert c.scaling.max_queue == 16
    assert c.scaling.write_limit == 32768
    assert c.link.profile == "loopback"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    c = TuningConfig().updated({"batching.strategy": "hybrid", "compression.level": 1})
    path = tmp_path / f"c{suffix}"
    c.save(path)
    assert TuningConfig.load(path) == c
    assert not list(tmp_path.glob("*.part"))


def test_default_yaml_is_commented_and_loads_back() -> None:
    text = default_yaml()
    assert "# LZ77 window of the server compressor" in text
    assert TuningConfig.from_dict(yaml.safe_load(text)) == TuningConfig()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"compression": {"server_max_window_bits": 20}}, "compression.server_max_window_bits"),
        ({"compression": {"server_max_window_bits": 8}}, "greater than or equal to 9"),
        ({"batching": {"strategy": "magic"}}, "batching.strategy: must be one of"),
        ({"batching": {"colour": 1}}, "batching.colour: unknown field"),
        ({"scaling": {"max_connections": 0}}, "scaling.max_connections"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_invalid_values_name_the_field(data: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        TuningConfig.from_dict(data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        TuningConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("batching: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TuningConfig.load(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("batching: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        TuningConfig.load(evil)


def test_updated_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="unknown config field"):
        TuningConfig().updated({"batching.nope": 1})


def test_schema_names_every_section() -> None:
    schema = TuningConfig.json_schema()
    assert set(schema["properties"]) == {"batching", "compression", "scaling", "link"}
