"""Pairing delegates for the hub's side of SMP: Just Works by default, passkey entry on request."""

from __future__ import annotations

from typing import Final

from bumble.pairing import PairingConfig, PairingDelegate

__all__ = ["PasskeyEntryDelegate", "pairing_config"]

_PASSKEY_MAX: Final = 999_999


class PasskeyEntryDelegate(PairingDelegate):
    """The hub types in the passkey the device displays, as a user would on a keyboard."""

    def __init__(self, passkey: int) -> None:
        if not 0 <= passkey <= _PASSKEY_MAX:
            msg = f"a passkey has six digits (0 to {_PASSKEY_MAX}), got {passkey}"
            raise ValueError(msg)
        super().__init__(io_capability=PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY)
        self.passkey = passkey

    async def get_number(self) -> int | None:
        """Answer the passkey request with the configured passkey."""
        return self.passkey


def pairing_config(delegate: PairingDelegate) -> PairingConfig:
    """Return the SMP configuration BlueZ uses: LE Secure Connections, bonding, MITM if possible."""
    # Asking for MITM protection without any I/O would only make a Just Works peer refuse.
    mitm = delegate.io_capability != PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
    return PairingConfig(sc=True, mitm=mitm, bonding=True, delegate=delegate)
