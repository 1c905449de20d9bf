"""The error types callers of the gateway catch; each message says what happened and what to do."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "OutboxError",
    "OutboxFullError",
    "PublishError",
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
