"""A bleak backend over Bumble: the gateway's bleak code talks to simulated devices as to BlueZ.

Select it with bleak's own argument, `BleakScanner(..., backend=BumbleScanner)` and
`BleakClient(..., backend=BumbleClient)`. Both share one adapter (the hub's Bumble host):

- in-process, for tests: `async with use_radio(radio): ...` on a `simulators.radio.Radio`;
- across processes: `VITALBRIDGE_BUMBLE_HCI=unix:/path/to/hci.sock` (or `tcp-client:HOST:PORT`),
  or `configure(hci_spec=...)`, or `async with use_hci(spec): ...`; the adapter opens lazily.

`reset_adapter()` closes it between tests. The gateway loads this module by name from its
configuration (``ble.backend = "simulators.bleak_backend"``) and takes `scanner_backend` and
`client_backend` from it.
"""

from __future__ import annotations

from simulators.bleak_backend._adapter import (
    CONNECT_TIMEOUT_ENV_VAR,
    HCI_ENV_VAR,
    AdapterSettings,
    BumbleAdapter,
    configure,
    get_adapter,
    reset_adapter,
    use_hci,
    use_radio,
)
from simulators.bleak_backend._client import BumbleClient, BumbleClientArgs
from simulators.bleak_backend._errors import (
    AdapterInUseError,
    AdapterNotConfiguredError,
    BumbleBackendError,
)
from simulators.bleak_backend._pairing import (
    AskingPasskeyDelegate,
    PasskeyEntryDelegate,
    passkey_agent,
)
from simulators.bleak_backend._scanner import BumbleDeviceDetails, BumbleScanner

__all__ = [
    "CONNECT_TIMEOUT_ENV_VAR",
    "HCI_ENV_VAR",
    "AdapterInUseError",
    "AdapterNotConfiguredError",
    "AdapterSettings",
    "AskingPasskeyDelegate",
    "BumbleAdapter",
    "BumbleBackendError",
    "BumbleClient",
    "BumbleClientArgs",
    "BumbleDeviceDetails",
    "BumbleScanner",
    "PasskeyEntryDelegate",
    "client_backend",
    "configure",
    "get_adapter",
    "passkey_agent",
    "reset_adapter",
    "scanner_backend",
    "use_hci",
    "use_radio",
]

scanner_backend = BumbleScanner
"""The scanner backend class the gateway's configurable backend loader takes from this module."""
client_backend = BumbleClient
"""The client backend class the gateway's configurable backend loader takes from this module."""
