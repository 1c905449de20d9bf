"""Errors of the Bumble backend; all are `BleakError`s, so gateway code catches them as on BlueZ."""

from __future__ import annotations

from bleak.exc import BleakError

__all__ = ["AdapterInUseError", "AdapterNotConfiguredError", "BumbleBackendError"]


class BumbleBackendError(BleakError):
    """Base of the errors that only the Bumble backend raises."""


class AdapterNotConfiguredError(BumbleBackendError):
    """No Bumble adapter is registered or configured for the running event loop."""


class AdapterInUseError(BumbleBackendError):
    """An adapter is already registered: the backend has one per process, like an HCI adapter."""
