"""Whose turn it is: the round-robin order in which devices' readings are handed out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["plan_turns"]


def plan_turns(available: Mapping[str, int], after: str | None, limit: int) -> list[str]:
    """Return the device of each of up to `limit` items, devices taking turns one item at a time.

    `available` counts the items each device can hand out now. Devices go in id order, starting
    after `after` (the device served last), so that a stream of small batches rotates too and a
    busy device (a heart-rate strap) never starves a quiet one (a cuff with one reading).
    """
    order = sorted(device for device, count in available.items() if count > 0)
    if after is not None:
        start = next((i for i, device in enumerate(order) if device > after), 0)
        order = order[start:] + order[:start]
    left = {device: available[device] for device in order}
    turns: list[str] = []
    while len(turns) < limit and order:
        for device in order:
            if len(turns) == limit:
                break
            turns.append(device)
            left[device] -= 1
        order = [device for device in order if left[device] > 0]
    return turns
