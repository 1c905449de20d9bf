"""How long the publisher waits: reconnect backoff, and refusals counted in rounds per kind."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

__all__ = ["Refusal", "RefusalRounds", "backoff_delay"]


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * 2.0 ** min(attempt, 32)))


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """What one refused publish means: whether to log it, whether it raised the alarm."""

    starts_streak: bool
    """The first round of refusals for this kind since it was last delivered: log it."""
    raises_alarm: bool
    """This round made the refusals of this kind persistent: raise the alarm."""


class RefusalRounds:
    """Refused PUBACKs per reading kind, in backoff rounds, with a pause for the whole drain.

    A window's worth of refusals arriving together are one round, not a window's worth: a
    round ends when its backoff does. ``alarm_rounds`` rounds in a row make a kind persistent.
    Pure bookkeeping: the caller passes the loop time.
    """

    def __init__(
        self, *, base_s: float, cap_s: float, alarm_rounds: int, rng: random.Random
    ) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._alarm_rounds = alarm_rounds
        self._rng = rng
        self._rounds: dict[str, int] = {}
        self._round_ends: dict[str, float] = {}
        self.alarmed: set[str] = set()
        self.pause_until = 0.0
        """Loop time before which the drain takes no new batch."""

    def refused(self, kind: str, now: float) -> Refusal:
        """Count a refusal of a ``kind`` reading at loop time ``now``."""
        if now < self._round_ends.get(kind, 0.0):
            return Refusal(starts_streak=False, raises_alarm=False)
        rounds = self._rounds.get(kind, 0) + 1
        self._rounds[kind] = rounds
        end = now + backoff_delay(rounds - 1, self._base_s, self._cap_s, self._rng)
        self._round_ends[kind] = end
        self.pause_until = max(self.pause_until, end)
        raises = rounds >= self._alarm_rounds and kind not in self.alarmed
        if raises:
            self.alarmed.add(kind)
        return Refusal(starts_streak=rounds == 1, raises_alarm=raises)

    def delivered(self, kind: str) -> bool:
        """Forget the kind's streak after a successful PUBACK; True if that cleared its alarm."""
        self._rounds.pop(kind, None)
        self._round_ends.pop(kind, None)
        if kind in self.alarmed:
            self.alarmed.discard(kind)
            return True
        return False
