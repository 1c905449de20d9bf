"""Pulse oximeters: a spot-check one with a memory served through RACP, and a continuous one.

Both serve the Pulse Oximeter Service (0x1822) with PLX Features. The spot-check oximeter
indicates each stable reading when a hub listens and otherwise keeps it, marked "data from
measurement storage", for the hub to fetch through the Record Access Control Point (which, as
PLXS defines it, knows only the "all records" operator). The continuous oximeter notifies a
reading per `measure` (or per second with `stream`) and keeps nothing.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, SpecialValue
from device_profiles.pulse_oximeter import (
    PLXContinuousMeasurement,
    PLXDeviceAndSensorStatus,
    PLXFeatures,
    PLXMeasurementStatus,
    PLXSpotCheckMeasurement,
    PLXSupportedFeatures,
    SpO2PR,
)
from device_profiles.racp import Operator
from simulators.devices.base import Link, SimulatedDevice
from simulators.devices.records import RacpServer, RecordStore, StoredRecord

__all__ = ["ContinuousOximeter", "SpotCheckOximeter"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
_S = PLXMeasurementStatus
_D = PLXDeviceAndSensorStatus
_LOW_PERFUSION_PERCENT: Final = 1
_STATUS_SUPPORT: Final = (
    _S.VALIDATED_DATA | _S.DATA_FROM_MEASUREMENT_STORAGE | _S.MEASUREMENT_UNAVAILABLE
)
_DEVICE_STATUS_SUPPORT: Final = _D.LOW_PERFUSION_DETECTED | _D.SENSOR_DISPLACED
_NAN: Final = Number.special_value(SpecialValue.NAN)


class _PulseOximeter(SimulatedDevice):
    """What both oximeters share: the service, PLX Features and the reading's fields."""

    APPEARANCE: ClassVar[int] = 0x0C41  # Pulse Oximeter: Fingertip
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x1822,)

    def _features(self) -> PLXFeatures:
        return PLXFeatures(
            PLXSupportedFeatures.MEASUREMENT_STATUS_SUPPORT
            | PLXSupportedFeatures.DEVICE_AND_SENSOR_STATUS_SUPPORT
            | PLXSupportedFeatures.PULSE_AMPLITUDE_INDEX
            | self._extra_features(),
            _STATUS_SUPPORT,
            _DEVICE_STATUS_SUPPORT,
        )

    def _extra_features(self) -> PLXSupportedFeatures:
        return PLXSupportedFeatures(0)

    def _reading(
        self,
    ) -> tuple[SpO2PR, PLXMeasurementStatus, PLXDeviceAndSensorStatus, Number | None]:
        """Draw a reading: the SpO2/PR pair, both statuses and the pulse amplitude index."""
        if self.special_values_due():
            # The finger moved: no value, which PLXS says is sent as NaN.
            return SpO2PR(_NAN, _NAN), _S.MEASUREMENT_UNAVAILABLE, _D.SENSOR_DISPLACED, None
        reading = self.physiology.oximetry()
        device_status = _D(0)
        if reading.perfusion_index < _LOW_PERFUSION_PERCENT:
            device_status |= _D.LOW_PERFUSION_DETECTED
        pair = SpO2PR(Number(reading.spo2, 0), Number(reading.pulse_rate, 0))
        return pair, _S.VALIDATED_DATA, device_status, Number.from_decimal(reading.perfusion_index)


class SpotCheckOximeter(_PulseOximeter):
    """A spot-check pulse oximeter (PLXS) with a memory of readings and RACP."""

    KIND: ClassVar[str] = "spot_check_oximeter"
    DEFAULT_NAME: ClassVar[str] = "VB Oximeter"
    MODEL: ClassVar[str] = "VB-OX10"

    measurement_characteristic: gatt.Characteristic[bytes]
    racp: RacpServer[PLXSpotCheckMeasurement]
    store: RecordStore[PLXSpotCheckMeasurement]

    def _build_services(self) -> list[gatt.Service]:
        self.store = RecordStore()
        self.measurement_characteristic = self.characteristic(
            PLXSpotCheckMeasurement.UUID, _P.INDICATE
        )
        features = self.characteristic(PLXFeatures.UUID, _P.READ, read=self._features)
        self.racp = RacpServer(
            self,
            self.store,
            self._send_record,
            operators=frozenset((Operator.ALL_RECORDS,)),
            report_needs=((self.measurement_characteristic, True),),
        )
        return [
            gatt.Service(
                gatt.GATT_PULSE_OXIMETER_SERVICE,
                [self.measurement_characteristic, features, self.racp.characteristic],
            )
        ]

    def _extra_features(self) -> PLXSupportedFeatures:
        extra = PLXSupportedFeatures.TIMESTAMP_FOR_SPOT_CHECK
        if self.behaviours.store_offline:
            extra |= PLXSupportedFeatures.MEASUREMENT_STORAGE_FOR_SPOT_CHECK
        return extra

    @property
    def stored_records(self) -> tuple[PLXSpotCheckMeasurement, ...]:
        """Readings kept for RACP, oldest first, as they will be sent."""
        return tuple(record.value for record in self.store.records)

    def _on_link_down(self, link: Link) -> None:
        self.racp.link_down(link)

    async def measure(self) -> PLXSpotCheckMeasurement:
        """Take a stable reading: indicate it to a listening hub, else keep it for RACP."""
        pair, status, device_status, pai = self._reading()
        measurement = PLXSpotCheckMeasurement(
            pair,
            timestamp=self.timestamp(),
            measurement_status=status,
            device_and_sensor_status=device_status,
            pulse_amplitude_index=pai,
            device_clock_is_not_set=not self.device_clock.is_set,
        )
        if self.subscribed(self.measurement_characteristic, indicate=True) and await self.send(
            self.measurement_characteristic, measurement, indicate=True, measurement=True
        ):
            self.after_send()
            return measurement
        if not self.behaviours.store_offline:
            logger.debug("reading_lost")
            return measurement
        kept = PLXSpotCheckMeasurement(
            pair,
            measurement.timestamp,
            status | _S.DATA_FROM_MEASUREMENT_STORAGE,
            device_status,
            pai,
            measurement.device_clock_is_not_set,
        )
        record = self.store.add(lambda _sequence_number: kept)
        logger.debug("reading_stored", extra={"record": record.sequence_number})
        return kept

    async def _send_record(self, record: StoredRecord[PLXSpotCheckMeasurement]) -> bool:
        return await self.send(
            self.measurement_characteristic, record.value, indicate=True, measurement=True
        )


class ContinuousOximeter(_PulseOximeter):
    """A continuous pulse oximeter (PLXS) that notifies a reading a second and keeps none."""

    KIND: ClassVar[str] = "continuous_oximeter"
    DEFAULT_NAME: ClassVar[str] = "VB Oximeter C"
    MODEL: ClassVar[str] = "VB-OX20C"
    HAS_CURRENT_TIME: ClassVar[bool] = False

    measurement_characteristic: gatt.Characteristic[bytes]

    def _build_services(self) -> list[gatt.Service]:
        self.measurement_characteristic = self.characteristic(
            PLXContinuousMeasurement.UUID, _P.NOTIFY
        )
        features = self.characteristic(PLXFeatures.UUID, _P.READ, read=self._features)
        return [
            gatt.Service(
                gatt.GATT_PULSE_OXIMETER_SERVICE, [self.measurement_characteristic, features]
            )
        ]

    @property
    def stored_records(self) -> tuple[PLXContinuousMeasurement, ...]:
        """Nothing: a continuous oximeter has no memory."""
        return ()

    async def measure(self) -> PLXContinuousMeasurement:
        """Notify the current reading to a listening hub (it is lost otherwise)."""
        pair, status, device_status, pai = self._reading()
        measurement = PLXContinuousMeasurement(
            pair,
            measurement_status=status,
            device_and_sensor_status=device_status,
            pulse_amplitude_index=pai,
        )
        await self.send(
            self.measurement_characteristic, measurement, indicate=False, measurement=True
        )
        return measurement
