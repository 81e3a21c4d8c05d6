"""Round-trip time estimation for STUN retransmissions (RFC 6298)."""

from __future__ import annotations

__all__ = ["RttEstimator"]

# RFC 6298 §2: smoothing gains and the variance multiplier.
_ALPHA = 1 / 8
_BETA = 1 / 4
_K = 4
# Clock granularity G of RFC 6298: the caller's clock is a float of seconds,
# and RFC 8489 §6.2.1 requires 1 ms accuracy.
_GRANULARITY = 0.001


class RttEstimator:
    """SRTT and RTTVAR from RTT samples, with the RTO they give.

    Callers apply Karn's algorithm: they feed only RTTs of responses to
    requests that were transmitted exactly once.
    """

    __slots__ = ("last", "last_update", "min", "rttvar", "samples", "srtt")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.min: float | None = None
        self.last: float | None = None
        self.samples = 0
        self.last_update = 0.0

    def update(self, sample: float, now: float) -> None:
        """Add one RTT sample in seconds, measured at time ``now``."""
        sample = max(sample, 0.0)
        if self.srtt is None or self.rttvar is None:
            # RFC 6298 §2.2: the first measurement.
            self.srtt = sample
            self.rttvar = sample / 2
        else:
            # RFC 6298 §2.3: RTTVAR is updated with the old SRTT first.
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - sample)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * sample
        if self.min is None or sample < self.min:
            self.min = sample
        self.last = sample
        self.samples += 1
        self.last_update = now

    def rto(self, minimum: float, maximum: float) -> float | None:
        """Return SRTT + max(G, 4 * RTTVAR) clamped to the bounds, or None."""
        if self.srtt is None or self.rttvar is None:
            return None
        value = self.srtt + max(_GRANULARITY, _K * self.rttvar)
        return min(max(value, minimum), maximum)
