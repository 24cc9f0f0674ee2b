"""Link profiles and the link model: bandwidth queue, delay, jitter, loss.

What lives here: the named link presets (each with the source of its numbers), custom
profiles from a file, and :class:`LinkModel`, which turns the times and sizes of writes into
arrival times on a virtual clock. It is vectorised (numpy recurrences), has no clock of its
own, and draws jitter and loss from a seeded generator so a replay is repeatable.

The model, per direction:

- **serialising queue**: a write starts when the link is free and occupies it for
  ``tcp_bytes * 8 / bandwidth`` seconds, so a burst on a slow link waits behind itself;
- **propagation**: half the round-trip time, plus jitter drawn uniformly from
  ``[0, jitter]`` per write;
- **loss**: TCP never loses bytes, it delays them. Each segment is lost with probability
  ``loss``. If at least three more segments leave within one RTT after the lost one, the
  receiver's duplicate ACKs trigger a fast retransmit and the write arrives one RTT late;
  otherwise (a tail loss on a quiet stream) it waits one retransmission timeout, taken as
  ``max(200 ms, rtt + 4 * jitter)`` (Linux's minimum RTO is 200 ms);
- **in-order delivery**: TCP hands bytes to the application in order, so a write never
  arrives before the one sent ahead of it (head-of-line blocking).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wslab.config import read_data_file
from wslab.errors import ConfigError
from wslab.wire import ETHERNET_MSS, LOOPBACK_MSS, TCP_IP_HEADER_BYTES, TcpModel

MIN_RTO_S = 0.2


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One link, both directions.

    Attributes:
        name: Profile name.
        down_kbps: Server-to-client bandwidth in kbit/s (0 = unlimited).
        up_kbps: Client-to-server bandwidth in kbit/s (0 = unlimited).
        rtt_ms: Round-trip time in milliseconds.
        jitter_ms: Extra one-way delay, uniform in ``[0, jitter_ms]``.
        loss: Probability that a segment is lost (and retransmitted), 0..1.
        mss: TCP maximum segment size on this link.
        source: Where the numbers come from.
    """

    name: str
    down_kbps: float
    up_kbps: float
    rtt_ms: float
    jitter_ms: float = 0.0
    loss: float = 0.0
    mss: int = ETHERNET_MSS
    source: str = ""

    def tcp(self) -> TcpModel:
        """The TCP segmentation model for this link's MSS."""
        return TcpModel(mss=self.mss, header_bytes=TCP_IP_HEADER_BYTES)

    def kbps(self, direction: str) -> float:
        """Bandwidth for ``"s2c"`` (down) or ``"c2s"`` (up)."""
        return self.down_kbps if direction == "s2c" else self.up_kbps


_DEVTOOLS = "Chrome DevTools throttling preset (devtools-frontend, SDK NetworkManager.ts)"

PROFILES: dict[str, LinkProfile] = {
    p.name: p
    for p in (
        LinkProfile(
            "loopback",
            0,
            0,
            0.05,
            0.0,
            0.0,
            LOOPBACK_MSS,
            "Linux loopback: no bandwidth limit, ~50 us RTT, 65536-byte MTU",
        ),
        LinkProfile(
            "lan",
            1_000_000,
            1_000_000,
            0.5,
            0.1,
            0.0,
            ETHERNET_MSS,
            "round figures for switched gigabit Ethernet (assumed, not measured)",
        ),
        LinkProfile(
            "wifi",
            50_000,
            20_000,
            8.0,
            4.0,
            0.001,
            ETHERNET_MSS,
            "round figures for a home 802.11ac link (assumed, not measured)",
        ),
        LinkProfile(
            "4g",
            12_000,
            5_000,
            60.0,
            15.0,
            0.002,
            ETHERNET_MSS,
            "round figures for a typical LTE link (assumed, not measured)",
        ),
        LinkProfile(
            "fast-3g",
            1_440,
            675,
            562.5,
            0.0,
            0.0,
            ETHERNET_MSS,
            _DEVTOOLS + ": 1.6 Mbit/s x 0.9 down, 750 kbit/s x 0.9 up, 150 ms x 3.75 latency",
        ),
        LinkProfile(
            "slow-3g",
            400,
            400,
            2000.0,
            0.0,
            0.0,
            ETHERNET_MSS,
            _DEVTOOLS + ": 500 kbit/s x 0.8 each way, 400 ms x 5 latency",
        ),
        LinkProfile(
            "satellite",
            25_000,
            3_000,
            600.0,
            20.0,
            0.005,
            ETHERNET_MSS,
            "geostationary satellite: ~600 ms RTT from the orbit's geometry; bandwidths assumed",
        ),
    )
}


def get_profile(name_or_path: str) -> LinkProfile:
    """A preset by name, or a custom profile from a YAML/JSON file.

    A custom file holds the :class:`LinkProfile` fields, e.g.
    ``{name: office, down_kbps: 20000, up_kbps: 5000, rtt_ms: 30, jitter_ms: 5}``.

    Raises:
        ConfigError: unknown name (the message lists the presets) or a bad file.
    """
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and path.exists():
        return profile_from_dict(read_data_file(path, "link profile"), str(path))
    raise ConfigError(
        f"unknown link profile {name_or_path!r}; known: {', '.join(PROFILES)} "
        "(or a .yaml file with down_kbps, up_kbps, rtt_ms, jitter_ms, loss)"
    )


def profile_from_dict(data: Any, where: str = "link profile") -> LinkProfile:
    """Validate a mapping into a :class:`LinkProfile`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of link fields")
    known = set(LinkProfile.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    ranges = {
        "down_kbps": (0, 1e8),
        "up_kbps": (0, 1e8),
        "rtt_ms": (0, 1e5),
        "jitter_ms": (0, 1e5),
        "loss": (0, 0.5),
        "mss": (88, 65483),
    }
    for key, (lo, hi) in ranges.items():
        if key in data:
            value = data[key]
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not lo <= value <= hi
            ):
                raise ConfigError(
                    f"{where}: {key} must be a number in {lo:g}..{hi:g}, got {value!r}"
                )
    for key in ("down_kbps", "up_kbps", "rtt_ms"):
        if key not in data:
            raise ConfigError(f"{where}: missing field {key}")
    fields = {
        "name": str(data.get("name", Path(where).stem)),
        "source": str(data.get("source", f"custom profile from {where}")),
    }
    base = LinkProfile(fields["name"], 0, 0, 0, source=fields["source"])
    return replace(base, **{k: v for k, v in data.items() if k not in ("name", "source")})


@dataclass(slots=True)
class Transmission:
    """Timing of a sequence of writes on one direction of a link (arrays, seconds)."""

    ready: npt.NDArray[np.float64]
    start: npt.NDArray[np.float64]
    serialisation: npt.NDArray[np.float64]
    arrival: npt.NDArray[np.float64]

    @property
    def queue_wait(self) -> npt.NDArray[np.float64]:
        """Time each write waited for the link to be free."""
        return self.start - self.ready


class LinkModel:
    """Delivers writes over one direction of a link on a virtual clock.

    Args:
        profile: The link.
        direction: ``"s2c"`` (uses the down bandwidth) or ``"c2s"`` (up).
        seed: Seed for jitter and loss draws.
    """

    def __init__(self, profile: LinkProfile, direction: str, seed: int = 0) -> None:
        self.profile = profile
        self.direction = direction
        self.seed = seed

    def transmit(
        self,
        ready: npt.NDArray[np.float64],
        tcp_bytes: npt.NDArray[np.int64],
        segments: npt.NDArray[np.int64],
    ) -> Transmission:
        """Times at which writes (handed to the kernel at ``ready``) reach the peer.

        ``ready`` must be non-decreasing (writes leave in the order they were made).
        """
        p = self.profile
        rng = np.random.default_rng(self.seed)
        n = len(ready)
        kbps = p.kbps(self.direction)
        ser: npt.NDArray[np.float64] = (
            tcp_bytes * 8.0 / (kbps * 1000.0) if kbps > 0 else np.zeros(n)
        ).astype(np.float64)
        # end_i = max(ready_i, end_{i-1}) + ser_i, solved in closed form with a running max.
        cum = np.cumsum(ser)
        before = cum - ser
        end = cum + np.maximum.accumulate(ready - before) if n else cum
        start: npt.NDArray[np.float64] = np.asarray(end - ser, dtype=np.float64)
        delay = np.full(n, p.rtt_ms / 2000.0)
        if p.jitter_ms > 0:
            delay += rng.uniform(0.0, p.jitter_ms / 1000.0, n)
        if p.loss > 0:
            hit = rng.random(n) < 1.0 - (1.0 - p.loss) ** segments
            rtt = p.rtt_ms / 1000.0
            rto = max(MIN_RTO_S, (p.rtt_ms + 4 * p.jitter_ms) / 1000.0)
            # Segments that leave within one RTT after each write (for duplicate ACKs).
            sent_by = np.cumsum(segments)
            later = sent_by[np.searchsorted(end, end + rtt, side="right") - 1] - sent_by
            delay += np.where(hit, np.where(later >= 3, rtt, rto), 0.0)
        arrival = np.maximum.accumulate(end + delay) if n else end
        return Transmission(ready=ready, start=start, serialisation=ser, arrival=arrival)
