"""Pairing delegates for the hub's side of SMP: Just Works by default, passkey entry on request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from bumble.pairing import PairingConfig, PairingDelegate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["AskingPasskeyDelegate", "PasskeyEntryDelegate", "pairing_config", "passkey_agent"]

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


class AskingPasskeyDelegate(PasskeyEntryDelegate):
    """Types in whatever the person pairing answers, at the moment the device asks."""

    def __init__(self, source: Callable[[], Awaitable[int]]) -> None:
        super().__init__(0)
        self._source = source

    async def get_number(self) -> int | None:
        """Ask for the passkey the device shows, and answer with it."""
        return await self._source()


def passkey_agent(source: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    """Return the BleakClient keyword arguments that make pairing ask `source` for the passkey.

    The gateway's guided pairing (`gateway.pairing.passkey_agent_for`) looks this up on the
    backend module by name; BlueZ needs an agent on D-Bus instead.
    """
    return {"bumble": {"pairing_delegate": AskingPasskeyDelegate(source)}}


def pairing_config(delegate: PairingDelegate) -> PairingConfig:
    """Return the SMP configuration BlueZ uses: LE Secure Connections, bonding, MITM if possible."""
    # Asking for MITM protection without any I/O would only make a Just Works peer refuse.
    mitm = delegate.io_capability != PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT
    return PairingConfig(sc=True, mitm=mitm, bonding=True, delegate=delegate)
