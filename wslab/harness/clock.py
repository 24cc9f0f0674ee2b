"""How far another process's clock is from ours, and how sure we are: round-trip estimates.

What lives here: :func:`estimate` (one burst of round trips: we note our clock when we
ask, the other side answers with its own reading, we note our clock when the answer
arrives; the sample with the shortest round trip wins), :class:`Offset` (one burst's
result) and :func:`bracket` (two bursts, one before and one after the measured period,
joined into the offset to apply and the uncertainty left). What must not live here: the
exchange itself (a holder's ``clock`` command, ``scale_dask.py``), correcting receipts.

The rule, for one sample (our send time ``s``, their reading ``r``, our receive time
``e``): their reading was taken somewhere between ``s`` and ``e`` on our clock, so the
offset ``r - t`` lies in ``[r - e, r - s]``. The midpoint ``r - (s + e) / 2`` is the
estimate, and it is off by at most half the round trip, whatever the split of the delays
between the two directions.

| quantity              | from one burst                      | from two (before, after)          |
|-----------------------|-------------------------------------|-----------------------------------|
| offset (theirs - ours)| ``r - (s + e) / 2`` of the min RTT  | mean of the two                   |
| uncertainty           | half that round trip                | larger half-RTT + half the drift  |
| drift                 | --                                  | ``after - before``                |

A time they stamped becomes ours as ``their_time - offset``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ROUNDS = 20
"""Round trips per burst; the shortest is kept (a scheduler hiccup only lengthens some)."""


@dataclass(frozen=True)
class Offset:
    """Their clock minus ours (seconds), and the most it can be off by."""

    offset_s: float
    uncertainty_s: float
    drift_s: float = 0.0

    def to_ours(self, their_time: float) -> float:
        """A time read on their clock, on ours."""
        return their_time - self.offset_s

    def as_dict(self) -> dict[str, float]:
        """Milliseconds, for a summary."""
        return {"offset_ms": 1e3 * self.offset_s, "uncertainty_ms": 1e3 * self.uncertainty_s,
                "drift_ms": 1e3 * self.drift_s}


def estimate(ask: Callable[[], float], now: Callable[[], float],
             rounds: int = ROUNDS) -> Offset:
    """One burst: ``rounds`` calls of ``ask`` (their clock's reading), each between two
    readings of ``now`` (ours); the sample with the shortest round trip."""
    if rounds < 1:
        raise ValueError("an estimate needs at least one round trip")
    best: tuple[float, float] | None = None  # (round trip, offset)
    for _ in range(rounds):
        sent = now()
        theirs = ask()
        back = now()
        rtt = back - sent
        if best is None or rtt < best[0]:
            best = (rtt, theirs - (sent + back) / 2)
    assert best is not None
    return Offset(best[1], best[0] / 2)


def bracket(before: Offset, after: Offset) -> Offset:
    """The offset over a period from bursts at its two ends: their mean, off by at most
    the larger half round trip plus half of how far the clocks drifted apart between."""
    drift = after.offset_s - before.offset_s
    return Offset((before.offset_s + after.offset_s) / 2,
                  max(before.uncertainty_s, after.uncertainty_s) + abs(drift) / 2, drift)
