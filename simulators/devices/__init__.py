"""Virtual health devices: Bumble GATT servers with plausible readings, behaviours and faults.

Make one on a simulated radio, start it, take measurements and watch what it sends::

    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:00:01", SimulatorConfig(seed=7))
    await cuff.start()
    reading = await cuff.measure()  # sent to a subscribed hub, or kept for later
    cuff.add_sent_listener(queue.put_nowait)  # every (uuid, bytes) the device sends
    await cuff.stop()

`DEVICE_TYPES` names every device type for scenarios and the CLI.
"""

from __future__ import annotations

from typing import Final

from simulators.devices.base import Link, SimulatedDevice
from simulators.devices.blood_pressure import BloodPressureCuff
from simulators.devices.clock import EPOCH_1970, Clock, DeviceClock, ManualClock, SystemClock
from simulators.devices.config import (
    LOW_BATTERY_PERCENT,
    QUIRK_BEHAVIOURS,
    Behaviours,
    DeviceIdentity,
    Pairing,
    PayloadFault,
    Sent,
    SimulatorConfig,
)
from simulators.devices.glucose import GlucoseMeter
from simulators.devices.heart_rate import HeartRateStrap
from simulators.devices.physiology import (
    ATHLETE,
    COPD,
    DIABETIC,
    ELDERLY_ATRIAL_FIBRILLATION,
    HYPERTENSIVE,
    NORMAL,
    PROFILES,
    PatientProfile,
    Physiology,
)
from simulators.devices.pulse_oximeter import ContinuousOximeter, SpotCheckOximeter
from simulators.devices.records import RecordStore, StoredRecord
from simulators.devices.scale import BodyCompositionScale, ScaleReading, WeightScale
from simulators.devices.thermometer import Thermometer

__all__ = [
    "ATHLETE",
    "COPD",
    "DEVICE_TYPES",
    "DIABETIC",
    "ELDERLY_ATRIAL_FIBRILLATION",
    "EPOCH_1970",
    "HYPERTENSIVE",
    "LOW_BATTERY_PERCENT",
    "NORMAL",
    "PROFILES",
    "QUIRK_BEHAVIOURS",
    "Behaviours",
    "BloodPressureCuff",
    "BodyCompositionScale",
    "Clock",
    "ContinuousOximeter",
    "DeviceClock",
    "DeviceIdentity",
    "GlucoseMeter",
    "HeartRateStrap",
    "Link",
    "ManualClock",
    "Pairing",
    "PatientProfile",
    "PayloadFault",
    "Physiology",
    "RecordStore",
    "ScaleReading",
    "Sent",
    "SimulatedDevice",
    "SimulatorConfig",
    "SpotCheckOximeter",
    "StoredRecord",
    "SystemClock",
    "Thermometer",
    "WeightScale",
]

DEVICE_TYPES: Final[dict[str, type[SimulatedDevice]]] = {
    device_type.KIND: device_type
    for device_type in (
        BloodPressureCuff,
        SpotCheckOximeter,
        ContinuousOximeter,
        WeightScale,
        BodyCompositionScale,
        Thermometer,
        GlucoseMeter,
        HeartRateStrap,
    )
}
"""Every simulated device type by its KIND."""
