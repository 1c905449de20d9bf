"""A clinical thermometer: Health Thermometer Service with intermediate temperatures.

While the probe warms up it notifies Intermediate Temperature readings climbing to the result,
which goes out as a Temperature Measurement indication. The measurement site is served once, in
Temperature Type, so the measurements leave it out (as the service asks). Readings taken with
no hub listening are kept and sent once a hub subscribes.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, SpecialValue
from device_profiles.health_thermometer import (
    NO_PERIODIC_MEASUREMENT,
    IntermediateTemperature,
    MeasurementInterval,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureTypeDescription,
)
from simulators.devices.base import SimulatedDevice

__all__ = ["Thermometer"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
_WARM_UP_STEPS: Final = (Decimal("-1.5"), Decimal("-0.8"), Decimal("-0.3"))
_NAN: Final = Number.special_value(SpecialValue.NAN)


class Thermometer(SimulatedDevice):
    """An ear thermometer (HTS 0x1809) that keeps readings until a hub takes them."""

    KIND: ClassVar[str] = "thermometer"
    DEFAULT_NAME: ClassVar[str] = "VB Thermo"
    MODEL: ClassVar[str] = "VB-TH40"
    APPEARANCE: ClassVar[int] = 0x0301  # Thermometer: Ear
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x1809,)
    SITE: ClassVar[TemperatureTypeDescription] = TemperatureTypeDescription.TYMPANUM

    measurement_characteristic: gatt.Characteristic[bytes]
    intermediate_characteristic: gatt.Characteristic[bytes]
    _memory: list[TemperatureMeasurement]

    def _build_services(self) -> list[gatt.Service]:
        self._memory = []
        self.measurement_characteristic = self.characteristic(
            TemperatureMeasurement.UUID, _P.INDICATE
        )
        self.intermediate_characteristic = self.characteristic(
            IntermediateTemperature.UUID, _P.NOTIFY
        )
        site = self.characteristic(
            TemperatureType.UUID, _P.READ, read=lambda: TemperatureType(self.SITE)
        )
        interval = self.characteristic(
            MeasurementInterval.UUID,
            _P.READ,
            read=lambda: MeasurementInterval(NO_PERIODIC_MEASUREMENT),
        )
        self.measurement_characteristic.on(
            gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription
        )
        return [
            gatt.Service(
                gatt.GATT_HEALTH_THERMOMETER_SERVICE,
                [self.measurement_characteristic, site, self.intermediate_characteristic, interval],
            )
        ]

    @property
    def stored_records(self) -> tuple[TemperatureMeasurement, ...]:
        """Readings not yet delivered to a hub, oldest first."""
        return tuple(self._memory)

    def _on_subscription(self, bearer: object, notify: bool, indicate: bool) -> None:
        del bearer, notify
        if indicate and self._memory:
            stored = self.deliver_stored(self.measurement_characteristic, self._memory)
            self.spawn(stored, "flush")

    async def measure(self) -> TemperatureMeasurement:
        """Take a temperature: intermediate readings, then the result (kept if nobody listens)."""
        special = self.special_values_due()
        celsius = self.physiology.temperature()
        if self.subscribed(self.intermediate_characteristic, indicate=False):
            for step in _WARM_UP_STEPS:
                warming = IntermediateTemperature(
                    Number.from_decimal(celsius + step), timestamp=self.timestamp()
                )
                await self.send(self.intermediate_characteristic, warming, indicate=False)
        measurement = TemperatureMeasurement(
            _NAN if special else Number.from_decimal(celsius), timestamp=self.timestamp()
        )
        if self.subscribed(self.measurement_characteristic, indicate=True) and await self.send(
            self.measurement_characteristic, measurement, indicate=True, measurement=True
        ):
            self.after_send()
            return measurement
        if self.behaviours.store_offline:
            self._memory.append(measurement)
            logger.debug("reading_stored", extra={"stored": len(self._memory)})
        return measurement
