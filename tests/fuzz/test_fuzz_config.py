"""Config loader on arbitrary YAML, JSON and mappings: a TuningConfig or ConfigError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz.strategies import fuzz_settings, json_values, outcome
from hypothesis import example, given
from hypothesis import strategies as st

from wslab.config import TuningConfig
from wslab.errors import ConfigError

SECTIONS = ["batching", "compression", "scaling", "link"]
FIELDS = ["strategy", "interval_ms", "max_bytes", "envelope", "priority_interval_ms",
          "algorithm", "level", "mem_level", "server_max_window_bits", "policy",
          "max_size", "max_connections", "workers", "profile", "critical", "nope"]
VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 1, 9, 16, 1e309, 2 ** 64, "hybrid", "zstd-dict", "adaptive", "4g", "", True, None,
     [], {}, "1e3", float("nan")]) | json_values
config_like = st.dictionaries(
    st.sampled_from(SECTIONS) | st.text(max_size=6),
    st.dictionaries(st.sampled_from(FIELDS), VALUES | st.dictionaries(
        st.sampled_from(["critical", "normal", "background", "x"]), VALUES, max_size=3),
        max_size=4) | json_values,
    max_size=4)


def _check(got: TuningConfig | BaseException) -> None:
    if isinstance(got, TuningConfig):
        # Whatever validated survives a save/load round trip unchanged.
        assert TuningConfig.from_dict(got.to_dict()) == got
        assert TuningConfig.from_dict(yaml.safe_load(got.to_yaml())) == got


@pytest.mark.timeout(60)
@fuzz_settings(300)
@given(data=config_like | json_values)
@example(data={"scaling": {"max_size": float("nan")}})
@example(data={"batching": {"priority_interval_ms": {"critical": -1}}})
def test_from_dict_gives_a_config_or_config_error(data: Any) -> None:
    _check(outcome(lambda: TuningConfig.from_dict(data), (ConfigError,)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@fuzz_settings(200)
@given(text=st.text(max_size=200)
       | config_like.map(lambda d: yaml.safe_dump(d, allow_unicode=True))
       | st.lists(st.sampled_from(["batching:", "\n", "  ", "strategy: ", "{", "}", "[", "]",
                                   "&a ", "*a ", "!!binary ", "!!python/none ", "- ", ":",
                                   "'", '"', "#", "%YAML 1.1\n", "---\n", "\t"]),
                  max_size=20).map("".join))
@example(text="!!python/object/apply:os.getcwd []")
@example(text="a: &x [1]\nb: *x\n")
def test_load_of_arbitrary_text_gives_a_config_or_config_error(
        tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text(text, "utf-8")
    _check(outcome(lambda: TuningConfig.load(path), (ConfigError,)))


@pytest.mark.timeout(60)
@fuzz_settings(200)
@given(data=config_like)
def test_load_of_json_written_configs(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data), "utf-8")
    _check(outcome(lambda: TuningConfig.load(path), (ConfigError,)))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_bytes(b"batching:\n  strategy: \xff\xfe\n")
    with pytest.raises(ConfigError):
        TuningConfig.load(path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("suffix", "depth"), [(".yaml", 5000), (".json", 100_000)])
def test_deeply_nested_config_is_a_config_error(tmp_path: Path, suffix: str,
                                                depth: int) -> None:
    path = tmp_path / f"c{suffix}"
    path.write_text("[" * depth + "]" * depth, "utf-8")
    with pytest.raises(ConfigError):
        TuningConfig.load(path)
