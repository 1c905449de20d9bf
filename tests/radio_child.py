"""Child process for test_radio.py: a Bumble central in another process, on an exposed radio.

Usage: ``radio_child.py CLIENT_SPEC PERIPHERAL_ADDRESS``. It opens the transport, scans until the
peripheral's scan response names it, connects, reads the GAP Device Name over GATT, disconnects
and writes one JSON line to stdout: ``{"scanned_name": ..., "gatt_name": ..., "rssi": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from bumble.core import AdvertisingData
from bumble.device import Advertisement, Device, Peer
from bumble.gatt import GATT_DEVICE_NAME_CHARACTERISTIC
from bumble.hci import Address
from bumble.transport import open_transport

CHILD_ADDRESS = "C0:00:00:00:0C:01"
TIMEOUT_S = 20.0


async def run(client_spec: str, peripheral: str) -> dict[str, object]:
    target = Address(peripheral)
    async with asyncio.timeout(TIMEOUT_S), await open_transport(client_spec) as transport:
        device = Device.with_hci("child", Address(CHILD_ADDRESS), transport.source, transport.sink)
        await device.power_on()
        named: asyncio.Future[Advertisement] = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            name = advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            if advertisement.address == target and name and not named.done():
                named.set_result(advertisement)

        device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        await device.start_scanning(active=True)
        advertisement = await named
        await device.stop_scanning()
        connection = await device.connect(target, timeout=TIMEOUT_S)
        peer = Peer(connection)
        values = await peer.read_characteristics_by_uuid(GATT_DEVICE_NAME_CHARACTERISTIC)
        await connection.disconnect()
        return {
            "scanned_name": advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME),
            "gatt_name": bytes(values[0]).decode(),
            "rssi": advertisement.rssi,
        }


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    client_spec, peripheral = sys.argv[1:3]
    result = asyncio.run(run(client_spec, peripheral))
    # stdout carries the result to the parent test; diagnostics go to stderr.
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
