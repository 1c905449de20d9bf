"""The Bluetooth backend chosen by configuration: BlueZ through bleak, or a module it names.

``ble.backend = "bleak"`` is bleak's platform default (BlueZ on Linux). Any other value names a
module exposing ``scanner_backend`` and ``client_backend`` (bleak backend classes) and, if it
takes options, ``configure(**ble.backend_options)``; the simulated radio is
``simulators.bleak_backend``. The gateway never imports that module by name: only this loader
does, from the configuration.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeGuard

import structlog
from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak_retry_connector import BleakClientWithServiceCache

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType

    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementDataCallback

    from gateway.config import BleSettings

__all__ = ["BLEAK", "BleBackend", "load_backend"]

_log = structlog.get_logger("gateway.ble")

BLEAK: Final = "bleak"
"""The `ble.backend` value of bleak's platform default (BlueZ on Linux)."""

_DEFAULT_ADAPTER: Final = "hci0"
_BLUEZ: Final = "org.bluez"
_ADAPTER_INTERFACE: Final = "org.bluez.Adapter1"
_PROPERTIES_INTERFACE: Final = "org.freedesktop.DBus.Properties"
# One D-Bus round trip to BlueZ; it answers within milliseconds unless it is wedged.
_DBUS_TIMEOUT_S: Final = 10.0
_SCANNING_MODE: Final = "active"


@dataclass(frozen=True)
class BleBackend:
    """The bleak backend classes and adapter the hub scans and connects with."""

    name: str
    """``bleak`` or the module the backend came from, for logs and the status."""
    scanner_backend: type[BaseBleakScanner] | None
    """The scanner backend class; None: bleak's platform default (BlueZ on Linux)."""
    client_backend: type[BaseBleakClient] | None
    """The client backend class; None: bleak's platform default (BlueZ on Linux)."""
    adapter: str | None = None
    """The BlueZ adapter (``hci0``); None: BlueZ's default. Other backends ignore it."""

    @property
    def is_bluez(self) -> bool:
        """Whether this is bleak's platform default, where the adapter option applies."""
        return self.scanner_backend is None and self.client_backend is None

    def scanner(
        self, detection_callback: AdvertisementDataCallback, service_uuids: list[str]
    ) -> BleakScanner:
        """Return a bleak scanner on this backend that reports devices advertising the services."""
        if self.scanner_backend is not None:
            return BleakScanner(
                detection_callback,
                service_uuids,
                scanning_mode=_SCANNING_MODE,
                backend=self.scanner_backend,
            )
        if self.adapter is not None:
            return BleakScanner(
                detection_callback,
                service_uuids,
                scanning_mode=_SCANNING_MODE,
                bluez={"adapter": self.adapter},
            )
        return BleakScanner(detection_callback, service_uuids, scanning_mode=_SCANNING_MODE)

    @property
    def client_class(self) -> type[BleakClient]:
        """A BleakClient class bound to this backend and adapter (for `establish_connection`)."""
        return _bound_client_class(self.client_backend, self.adapter if self.is_bluez else None)

    async def power_cycle(self) -> bool:
        """Power the adapter off and on again; False (with a warning) if that cannot be done."""
        if self.is_bluez:
            return await _power_cycle_bluez(self.adapter or _DEFAULT_ADAPTER)
        return await _power_cycle_module(self.name)


@functools.cache
def _bound_client_class(
    client_backend: type[BaseBleakClient] | None, bluez_adapter: str | None
) -> type[BleakClient]:
    # bleak-retry-connector instantiates the class itself, so the backend and adapter travel
    # with the class rather than as arguments at each call site. Cached: one class per binding.
    class BoundBleakClient(BleakClientWithServiceCache):
        """A BleakClient that always uses the hub's configured backend and adapter."""

        def __init__(
            self,
            address_or_ble_device: BLEDevice | str,
            disconnected_callback: Callable[[BleakClient], None] | None = None,
            services: Iterable[str] | None = None,
            **kwargs: Any,  # noqa: ANN401 - forwarded unchanged to BleakClient's own keywords
        ) -> None:
            if client_backend is not None:
                kwargs.setdefault("backend", client_backend)
            elif bluez_adapter is not None:
                kwargs.setdefault("bluez", {"adapter": bluez_adapter})
            super().__init__(address_or_ble_device, disconnected_callback, services, **kwargs)

    return BoundBleakClient


async def _power_cycle_bluez(adapter: str) -> bool:
    # Imported here: dbus-fast is a bleak dependency on Linux only.
    from dbus_fast import BusType, Message, MessageType, Variant  # noqa: PLC0415
    from dbus_fast.aio import MessageBus  # noqa: PLC0415

    path = f"/org/bluez/{adapter}"
    bus: MessageBus | None = None
    try:
        async with asyncio.timeout(_DBUS_TIMEOUT_S):
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            for powered in (False, True):
                reply = await bus.call(
                    Message(
                        destination=_BLUEZ,
                        path=path,
                        interface=_PROPERTIES_INTERFACE,
                        member="Set",
                        signature="ssv",
                        body=[_ADAPTER_INTERFACE, "Powered", Variant("b", powered)],
                    )
                )
                if reply is None or reply.message_type == MessageType.ERROR:
                    error = None if reply is None else reply.error_name
                    _log.warning(
                        "adapter_power_cycle_failed",
                        adapter=adapter,
                        error=error,
                        hint=(
                            f"BlueZ refused to power {adapter} {'on' if powered else 'off'}: "
                            "check that the adapter exists (`bluetoothctl list`), that it is not "
                            "blocked (`rfkill list`), and that this user may use BlueZ over D-Bus"
                        ),
                    )
                    return False
    except (OSError, TimeoutError, ValueError, EOFError) as exc:
        # ValueError and EOFError: dbus-fast's answer to a bad bus address or a dropped socket.
        _log.warning(
            "adapter_power_cycle_failed",
            adapter=adapter,
            error=repr(exc),
            hint=(
                "could not reach BlueZ on the system D-Bus: check that dbus and bluetooth are "
                "running (`systemctl status bluetooth`)"
            ),
        )
        return False
    finally:
        if bus is not None:
            bus.disconnect()
    _log.info("adapter_power_cycled", adapter=adapter)
    return True


async def _power_cycle_module(module_name: str) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _log.warning("adapter_power_cycle_failed", backend=module_name, error=repr(exc))
        return False
    hook = getattr(module, "power_cycle", None)
    if not callable(hook):
        _log.debug("adapter_power_cycle_unsupported", backend=module_name)
        return False
    try:
        outcome = hook()
        if inspect.isawaitable(outcome):
            outcome = await outcome
    except Exception as exc:  # noqa: BLE001 - a backend module's optional hook: any failure means "not power-cycled"
        _log.warning(
            "adapter_power_cycle_failed",
            backend=module_name,
            error=repr(exc),
            hint=f"{module_name}.power_cycle() raised; check that backend's adapter",
        )
        return False
    return bool(outcome)


def load_backend(settings: BleSettings) -> BleBackend:
    """Return the backend `ble.backend` names; raise ConfigError saying what to write if wrong."""
    if settings.backend == BLEAK:
        if settings.backend_options:
            msg = (
                "ble.backend_options: the bleak (BlueZ) backend takes no options; remove "
                "backend_options, or set ble.adapter to choose the adapter"
            )
            raise ConfigError(msg)
        return BleBackend(BLEAK, None, None, settings.adapter)
    module = _import_backend(settings.backend)
    scanner_backend = getattr(module, "scanner_backend", None)
    if not _is_scanner_class(scanner_backend):
        raise _wrong_class(settings.backend, "scanner_backend", scanner_backend, "BaseBleakScanner")
    client_backend = getattr(module, "client_backend", None)
    if not _is_client_class(client_backend):
        raise _wrong_class(settings.backend, "client_backend", client_backend, "BaseBleakClient")
    if settings.backend_options:
        _configure(module, settings.backend, settings.backend_options)
    return BleBackend(settings.backend, scanner_backend, client_backend, settings.adapter)


def _import_backend(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = (
            f'ble.backend: cannot import {name!r} ({exc}); write backend = "bleak" for BlueZ, '
            "or the dotted name of an installed module exposing scanner_backend and "
            'client_backend (e.g. "simulators.bleak_backend")'
        )
        raise ConfigError(msg) from exc


def _is_scanner_class(value: object) -> TypeGuard[type[BaseBleakScanner]]:
    return isinstance(value, type) and issubclass(value, BaseBleakScanner)


def _is_client_class(value: object) -> TypeGuard[type[BaseBleakClient]]:
    return isinstance(value, type) and issubclass(value, BaseBleakClient)


def _wrong_class(name: str, attribute: str, value: object, base: str) -> ConfigError:
    found = "nothing" if value is None else repr(value)
    return ConfigError(
        f"ble.backend: module {name!r} has {found} as {attribute}, not a subclass of bleak's "
        f'{base}; write backend = "bleak" for BlueZ, or name a module that exposes both '
        "scanner_backend and client_backend classes"
    )


def _configure(module: ModuleType, name: str, options: dict[str, str]) -> None:
    configure = getattr(module, "configure", None)
    if not callable(configure):
        msg = (
            f"ble.backend_options: backend {name!r} has no configure() and takes no options; "
            "remove ble.backend_options"
        )
        raise ConfigError(msg)
    try:
        configure(**options)
    except (TypeError, ValueError) as exc:
        try:
            accepted = ", ".join(inspect.signature(configure).parameters)
        except (TypeError, ValueError):
            accepted = "(unknown)"
        msg = (
            f"ble.backend_options: {name}.configure() refused {sorted(options)} ({exc}); "
            f"write only options it takes: {accepted}"
        )
        raise ConfigError(msg) from exc
