"""The error types callers of the gateway catch; each message says what happened and what to do."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceProfileError",
    "DeviceSessionError",
    "DeviceUnavailableError",
    "OutboxError",
    "OutboxFullError",
    "PublishError",
    "TransferError",
    "VitalbridgeError",
]


class VitalbridgeError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(VitalbridgeError):
    """A configuration that cannot work: names the file, the field and what to write instead."""


class OutboxError(VitalbridgeError):
    """The durable outbox cannot store or hand out readings (disk full, corrupted database)."""


class OutboxFullError(OutboxError):
    """The outbox is at its bound and its policy refuses new readings (keep them on the device)."""


class PublishError(VitalbridgeError):
    """The broker refused or could not take a publish (bad credentials, TLS, reason code)."""


class DeviceSessionError(VitalbridgeError):
    """A session with one device failed; the device is retried later with backoff."""

    def __init__(self, device_id: str, message: str) -> None:
        self.device_id = device_id
        super().__init__(f"device {device_id}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the typed attributes when the error crosses a process or a pickle.
        return (type(self), (self.device_id, str(self).removeprefix(f"device {self.device_id}: ")))


class DeviceUnavailableError(DeviceSessionError):
    """The device could not be reached: out of range, asleep, or connected to another hub."""


class DeviceProfileError(DeviceSessionError):
    """The device does not serve what its profile needs (wrong device type provisioned?)."""


class TransferError(DeviceSessionError):
    """A stored-record transfer (RACP) failed, timed out or was cut off; it resumes next time."""
