"""The simulated radio: Bumble virtual controllers on one shared link, in one event loop."""

from __future__ import annotations

from bumble.controller import Controller
from bumble.device import Device, DeviceConfiguration
from bumble.hci import Address
from bumble.link import LocalLink

__all__ = ["Radio"]


class Radio:
    """One simulated radio: every device and host made from it can hear the others."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]  # Bumble leaves __init__ unannotated

    def controller(self, name: str) -> Controller:
        """Create a virtual controller attached to this radio."""
        return Controller(name, link=self.link)

    def device(self, name: str, address: str) -> Device:
        """Create a Bumble device (host + controller) on this radio; the caller powers it on."""
        controller = self.controller(name)
        config = DeviceConfiguration(name=name, address=Address(address))
        return Device.from_config_with_hci(config, controller, controller)
