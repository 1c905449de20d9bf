"""The local pairing page served by the daemon on the hub's network (see `gateway.web.server`)."""

from gateway.web.server import (
    CodeRejectedError,
    CodesLockedError,
    HubControl,
    OneTimeCodes,
    PairingPage,
    RegistryHub,
    WebSettings,
    public_device,
)

__all__ = [
    "CodeRejectedError",
    "CodesLockedError",
    "HubControl",
    "OneTimeCodes",
    "PairingPage",
    "RegistryHub",
    "WebSettings",
    "public_device",
]
