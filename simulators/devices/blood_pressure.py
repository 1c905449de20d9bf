"""An upper-arm blood pressure cuff: Blood Pressure Service with intermediate cuff pressure.

While the cuff inflates and deflates it notifies Intermediate Cuff Pressure; the result goes out
as a Blood Pressure Measurement indication. Readings taken with no hub listening are kept and
sent, oldest first, as soon as a hub subscribes to the measurement (as Omron-style cuffs do,
without RACP); a confirmed indication removes a record from the memory.

Two vendor quirks can be switched on (Behaviours): `requires_clock_set`, a cuff that sends
nothing, not even intermediate cuff pressures, until the hub writes Current Time on the link,
and then sends what it kept; and `zero_fills_absent_fields`, a cuff that measures neither mean
arterial pressure nor pulse rate yet sends both as zero, the pulse rate with its present flag.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, SpecialValue
from device_profiles.blood_pressure import (
    BloodPressureFeature,
    BloodPressureFeatures,
    BloodPressureMeasurement,
    BloodPressureStatus,
    IntermediateCuffPressure,
)
from simulators.devices.base import Link, SimulatedDevice

__all__ = ["BloodPressureCuff"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
_FEATURES: Final = (
    BloodPressureFeatures.BODY_MOVEMENT_DETECTION
    | BloodPressureFeatures.IRREGULAR_PULSE_DETECTION
    | BloodPressureFeatures.PULSE_RATE_RANGE_DETECTION
)
_INFLATION_STEP_MMHG: Final = 40
_DEFLATION_STEP_MMHG: Final = 25
_INFLATE_ABOVE_SYSTOLIC_MMHG: Final = 30
_PULSE_RANGE: Final = (40, 180)
_PULSE_RATE_RANGE: Final = (
    BloodPressureStatus.PULSE_RATE_ABOVE_UPPER_LIMIT
    | BloodPressureStatus.PULSE_RATE_BELOW_LOWER_LIMIT
)


def _mmhg(value: int) -> Number:
    return Number(value, 0)


class BloodPressureCuff(SimulatedDevice):
    """A blood pressure monitor (BPS 0x1810) that keeps readings until a hub takes them."""

    KIND: ClassVar[str] = "blood_pressure_cuff"
    DEFAULT_NAME: ClassVar[str] = "VB Cuff"
    MODEL: ClassVar[str] = "VB-BP200"
    APPEARANCE: ClassVar[int] = 0x0381  # Blood Pressure: Arm
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x1810,)
    QUIRKS_SIMULATED: ClassVar[frozenset[str]] = frozenset(
        {"requires_clock_set", "zero_fills_absent_fields"}
    )

    measurement_characteristic: gatt.Characteristic[bytes]
    intermediate_characteristic: gatt.Characteristic[bytes]
    _memory: list[BloodPressureMeasurement]

    def _build_services(self) -> list[gatt.Service]:
        self._memory = []
        self.measurement_characteristic = self.characteristic(
            BloodPressureMeasurement.UUID, _P.INDICATE
        )
        self.intermediate_characteristic = self.characteristic(
            IntermediateCuffPressure.UUID, _P.NOTIFY
        )
        feature = self.characteristic(
            BloodPressureFeature.UUID, _P.READ, read=lambda: BloodPressureFeature(_FEATURES)
        )
        self.measurement_characteristic.on(
            gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription
        )
        return [
            gatt.Service(
                gatt.GATT_BLOOD_PRESSURE_SERVICE,
                [self.measurement_characteristic, self.intermediate_characteristic, feature],
            )
        ]

    @property
    def stored_records(self) -> tuple[BloodPressureMeasurement, ...]:
        """Readings not yet delivered to a hub, oldest first."""
        return tuple(self._memory)

    def _on_subscription(self, bearer: object, notify: bool, indicate: bool) -> None:
        del bearer, notify
        if indicate and self._memory and self.measurements_released:
            stored = self.deliver_stored(self.measurement_characteristic, self._memory)
            self.spawn(stored, "flush")

    def _on_clock_written(self, link: Link) -> None:
        del link
        if self._memory and self.subscribed(self.measurement_characteristic, indicate=True):
            stored = self.deliver_stored(self.measurement_characteristic, self._memory)
            self.spawn(stored, "flush")

    async def measure(self) -> BloodPressureMeasurement:
        """Inflate, measure and report; keep the reading if no hub is subscribed."""
        special = self.special_values_due()
        reading = self.physiology.blood_pressure()
        status = BloodPressureStatus(0)
        if reading.irregular_pulse:
            status |= BloodPressureStatus.IRREGULAR_PULSE_DETECTED
        if reading.body_movement:
            status |= BloodPressureStatus.BODY_MOVEMENT_DETECTED
        if reading.pulse_rate > _PULSE_RANGE[1]:
            status |= BloodPressureStatus.PULSE_RATE_ABOVE_UPPER_LIMIT
        elif reading.pulse_rate < _PULSE_RANGE[0]:
            status |= BloodPressureStatus.PULSE_RATE_BELOW_LOWER_LIMIT
        mean_arterial_pressure = _mmhg(reading.mean_arterial_pressure)
        pulse_rate = _mmhg(reading.pulse_rate)
        if self.behaviours.zero_fills_absent_fields:
            # It measures neither, and its firmware fills both fields with zero regardless; with
            # no pulse rate it cannot judge the pulse rate range either.
            mean_arterial_pressure = pulse_rate = _mmhg(0)
            status &= ~_PULSE_RATE_RANGE
        elif special:
            # A cuff that cannot resolve the mean reports NRes; the pulse it lost, NaN.
            mean_arterial_pressure = Number.special_value(SpecialValue.NRES)
            pulse_rate = Number.special_value(SpecialValue.NAN)
        measurement = BloodPressureMeasurement(
            _mmhg(reading.systolic),
            _mmhg(reading.diastolic),
            mean_arterial_pressure,
            timestamp=self.timestamp(),
            pulse_rate=pulse_rate,
            measurement_status=status,
        )
        released = self.measurements_released
        if released and self.subscribed(self.intermediate_characteristic, indicate=False):
            await self._send_cuff_pressures(reading.systolic, reading.diastolic)
        if (
            released
            and self.subscribed(self.measurement_characteristic, indicate=True)
            and await self.send(
                self.measurement_characteristic, measurement, indicate=True, measurement=True
            )
        ):
            self.after_send()
            return measurement
        if self.behaviours.store_offline:
            self._memory.append(measurement)
            logger.debug("reading_stored", extra={"stored": len(self._memory)})
        else:
            logger.debug("reading_lost")
        return measurement

    async def _send_cuff_pressures(self, systolic: int, diastolic: int) -> None:
        top = systolic + _INFLATE_ABOVE_SYSTOLIC_MMHG
        pressures = [
            *range(0, top, _INFLATION_STEP_MMHG),
            *range(top, max(diastolic - 10, 0), -_DEFLATION_STEP_MMHG),
        ]
        for pressure in pressures:
            value = IntermediateCuffPressure(
                _mmhg(pressure),
                timestamp=self.timestamp(),
                measurement_status=BloodPressureStatus(0),
            )
            await self.send(self.intermediate_characteristic, value, indicate=False)
