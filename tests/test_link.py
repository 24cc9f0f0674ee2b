"""Link profiles and the link model's queueing, delay, loss and ordering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wslab.errors import ConfigError
from wslab.link import PROFILES, LinkModel, LinkProfile, get_profile


def test_presets_exist_with_sources() -> None:
    for name in ("loopback", "lan", "wifi", "4g", "fast-3g", "slow-3g", "satellite"):
        assert PROFILES[name].source
    assert PROFILES["slow-3g"].down_kbps == pytest.approx(400)
    assert PROFILES["fast-3g"].rtt_ms == pytest.approx(562.5)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="slow-3g"):
        get_profile("moon-link")


def test_custom_profile_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "office.yaml"
    path.write_text("down_kbps: 20000\nup_kbps: 5000\nrtt_ms: 30\njitter_ms: 5\n")
    p = get_profile(str(path))
    assert (p.name, p.down_kbps, p.rtt_ms, p.jitter_ms) == ("office", 20000, 30, 5)
    path.write_text("down_kbps: 20000\nup_kbps: 5000\nrtt_ms: -3\n")
    with pytest.raises(ConfigError, match="rtt_ms"):
        get_profile(str(path))
    path.write_text("down_kbps: 1\nup_kbps: 1\nrtt_ms: 1\nbandwidth: 3\n")
    with pytest.raises(ConfigError, match="bandwidth"):
        get_profile(str(path))


def test_a_burst_waits_behind_itself() -> None:
    link = LinkProfile("t", down_kbps=80, up_kbps=80, rtt_ms=100)  # 10 kB/s
    tx = LinkModel(link, "s2c").transmit(
        np.array([0.0, 0.0, 0.0, 5.0]), np.array([1000, 1000, 1000, 1000]),
        np.array([1, 1, 1, 1]))
    assert tx.serialisation == pytest.approx([0.1] * 4)
    assert tx.start == pytest.approx([0.0, 0.1, 0.2, 5.0])
    assert tx.queue_wait == pytest.approx([0.0, 0.1, 0.2, 0.0])
    assert tx.arrival == pytest.approx([0.15, 0.25, 0.35, 5.15])


def test_loss_delays_and_never_reorders() -> None:
    link = LinkProfile("lossy", 0, 0, rtt_ms=50, jitter_ms=20, loss=0.2)
    ready = np.sort(np.random.default_rng(1).uniform(0, 10, 2000))
    tx = LinkModel(link, "s2c", seed=3).transmit(ready, np.full(2000, 500), np.ones(2000, int))
    assert np.all(np.diff(tx.arrival) >= 0)
    base = ready + 0.025
    extra = tx.arrival - base
    assert extra.min() >= 0
    assert (extra > 0.05).mean() > 0.1  # a fifth of the writes lose a segment
    same = LinkModel(link, "s2c", seed=3).transmit(ready, np.full(2000, 500), np.ones(2000, int))
    assert np.array_equal(tx.arrival, same.arrival)


def test_tail_loss_waits_a_timeout_busy_stream_a_round_trip() -> None:
    link = LinkProfile("l", 0, 0, rtt_ms=40, loss=0.999999)
    quiet = LinkModel(link, "s2c").transmit(np.array([0.0]), np.array([100]), np.array([1]))
    assert quiet.arrival[0] == pytest.approx(0.02 + 0.2)
    busy = LinkModel(link, "s2c").transmit(np.zeros(10), np.full(10, 100), np.ones(10, int))
    assert busy.arrival[0] == pytest.approx(0.02 + 0.04)
