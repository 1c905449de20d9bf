"""A chest heart rate strap: Heart Rate Service with RR intervals and body sensor location.

Each `measure` notifies one Heart Rate Measurement (as a strap does once a second): the rate,
skin contact, and the RR intervals behind it in 1/1024 s. The strap has no clock and no memory:
a reading with no hub listening is gone.
"""

from __future__ import annotations

from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, Scale
from device_profiles.heart_rate import (
    BodySensorLocation,
    HeartRateMeasurement,
    SensorContactStatus,
    SensorLocation,
)
from simulators.devices.base import SimulatedDevice

__all__ = ["HeartRateStrap"]

_P = gatt.Characteristic.Properties
# RR intervals travel in 1/1024 s, which is exactly 9765625 * 10**-10 s.
_RR_SCALE: Final = Scale(9765625, -10)
_RR_UNITS_PER_SECOND: Final = 1024


class HeartRateStrap(SimulatedDevice):
    """A heart rate chest strap (HRS 0x180D) notifying the rate with RR intervals."""

    KIND: ClassVar[str] = "heart_rate_strap"
    DEFAULT_NAME: ClassVar[str] = "VB HR Strap"
    MODEL: ClassVar[str] = "VB-HR1"
    APPEARANCE: ClassVar[int] = 0x0341  # Heart Rate Sensor: Belt
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x180D,)
    HAS_CURRENT_TIME: ClassVar[bool] = False

    measurement_characteristic: gatt.Characteristic[bytes]

    def _build_services(self) -> list[gatt.Service]:
        self.measurement_characteristic = self.characteristic(HeartRateMeasurement.UUID, _P.NOTIFY)
        location = self.characteristic(
            BodySensorLocation.UUID,
            _P.READ,
            read=lambda: BodySensorLocation(SensorLocation.CHEST),
        )
        return [
            gatt.Service(gatt.GATT_HEART_RATE_SERVICE, [self.measurement_characteristic, location])
        ]

    @property
    def stored_records(self) -> tuple[HeartRateMeasurement, ...]:
        """Nothing: a strap has no memory."""
        return ()

    async def measure(self) -> HeartRateMeasurement:
        """Notify the current heart rate and RR intervals (lost if no hub listens)."""
        if self.special_values_due():
            # The strap slipped: no skin contact, no beats to time. The rate has no special
            # value in this profile, so the contact bits carry the news.
            measurement = HeartRateMeasurement(
                Number(0, 0), sensor_contact_status=SensorContactStatus.NOT_DETECTED
            )
        else:
            reading = self.physiology.heart_rate()
            measurement = HeartRateMeasurement(
                Number(reading.heart_rate, 0),
                sensor_contact_status=SensorContactStatus.DETECTED,
                rr_interval=tuple(
                    Number.fixed(round(seconds * _RR_UNITS_PER_SECOND), _RR_SCALE)
                    for seconds in reading.rr_intervals_s
                ),
            )
        await self.send(
            self.measurement_characteristic, measurement, indicate=False, measurement=True
        )
        return measurement
