"""Whether the hub's own clock can be trusted to set a device's clock.

The kernel knows: NTP daemons (systemd-timesyncd, chrony, ntpd) clear its "unsynchronised"
status bit once they have disciplined the clock, and `adjtimex(2)` reports TIME_ERROR while the
bit is set. A hub fresh from a power cut with no network has a clock from its last shutdown (a
Raspberry Pi has no RTC battery): writing that into a cuff would make every later reading wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import sys
from typing import Final

__all__ = ["HubClockPolicy", "kernel_clock_synchronised"]

_TIME_ERROR: Final = 5
# struct timex is 208 bytes on 64-bit Linux and smaller on 32-bit; a generous zeroed buffer
# with modes = 0 (read only) is enough for the kernel to fill in and return the clock state.
_TIMEX_BUFFER: Final = 512


class HubClockPolicy(enum.StrEnum):
    """When the hub sets device clocks from its own."""

    AUTO = "auto"
    """Only when the kernel reports the clock synchronised (NTP)."""
    TRUSTED = "trusted"
    """Always: a hub whose clock is kept right by other means (a GPS or RTC module, a test)."""
    NEVER = "never"
    """Never set device clocks; only read them and record their offset."""


def kernel_clock_synchronised() -> bool:
    """Return whether the kernel reports the system clock synchronised (False if it cannot say)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return False
    buffer = ctypes.create_string_buffer(_TIMEX_BUFFER)
    state = adjtimex(buffer)
    return bool(state >= 0 and state != _TIME_ERROR)
