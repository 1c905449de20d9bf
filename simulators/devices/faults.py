"""Deliberate payload defects: the one place where the simulators change encoded bytes by hand.

Special values are not made here: the devices build them with `device_profiles` (NaN, NRes,
"measurement unsuccessful") and encode them as usual. This module only damages bytes that were
encoded correctly, to test how a hub copes with what real devices get wrong.
"""

from __future__ import annotations

from typing import Final

from simulators.devices.config import PayloadFault

__all__ = ["damage"]

# Where the top reserved flag bit sits, per characteristic: (byte offset, bit mask). Bit 7 of the
# first byte is reserved in every measurement's flags except Body Composition's 16-bit flags,
# whose reserved bits are 13-15.
_RESERVED_FLAG_BIT: Final[dict[int, tuple[int, int]]] = {0x2A9C: (1, 0x80)}
_DEFAULT_RESERVED_FLAG_BIT: Final = (0, 0x80)


def damage(uuid: int, payload: bytes, fault: PayloadFault) -> bytes:
    """Return `payload` with the byte-level `fault` applied (special values pass unchanged)."""
    if fault is PayloadFault.TRUNCATED:
        return payload[:-1]
    if fault is PayloadFault.MALFORMED:
        return payload[:1]
    if fault is PayloadFault.RESERVED_BITS:
        offset, mask = _RESERVED_FLAG_BIT.get(uuid, _DEFAULT_RESERVED_FLAG_BIT)
        damaged = bytearray(payload)
        damaged[offset] |= mask
        return bytes(damaged)
    return payload
