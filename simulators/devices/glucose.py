"""A glucose meter: Glucose Service with measurement context, and a Record Access Control Point.

Like real meters, it keeps every reading in its memory (until a hub deletes them) and serves them
through RACP: each record is a Glucose Measurement notification, followed by a Glucose Measurement
Context notification when the measurement says one follows. A hub that is connected and
subscribed also gets each new reading at once, as many meters send it after the strip is read.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, SpecialValue
from device_profiles.glucose import (
    CarbohydrateId,
    GlucoseFeature,
    GlucoseFeatures,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseRecord,
    GlucoseType,
    Health,
    Meal,
    SampleLocation,
    SensorStatus,
    Tester,
)
from simulators.devices.base import Link, SimulatedDevice
from simulators.devices.records import RacpServer, RecordStore, StoredRecord

__all__ = ["GlucoseMeter"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
# mg/dL to the kg/L the measurement carries: 1 mg/dL = 1e-5 kg/L, exactly.
_MG_PER_DL_EXPONENT: Final = -5
_FEATURES: Final = (
    GlucoseFeatures.LOW_BATTERY_DETECTION
    | GlucoseFeatures.SENSOR_MALFUNCTION_DETECTION
    | GlucoseFeatures.SENSOR_SAMPLE_SIZE
    | GlucoseFeatures.SENSOR_STRIP_INSERTION_ERROR_DETECTION
    | GlucoseFeatures.SENSOR_RESULT_HIGH_LOW_DETECTION
    | GlucoseFeatures.TIME_FAULT
)
_MEALS: Final = (Meal.PREPRANDIAL, Meal.POSTPRANDIAL, Meal.FASTING, Meal.CASUAL, Meal.BEDTIME)
_CARBS: Final = {
    Meal.PREPRANDIAL: CarbohydrateId.LUNCH,
    Meal.POSTPRANDIAL: CarbohydrateId.DINNER,
    Meal.CASUAL: CarbohydrateId.SNACK,
}


class GlucoseMeter(SimulatedDevice):
    """A glucose meter (GLS 0x1808) with its memory served through RACP."""

    KIND: ClassVar[str] = "glucose_meter"
    DEFAULT_NAME: ClassVar[str] = "VB Glucose"
    MODEL: ClassVar[str] = "VB-GL100"
    APPEARANCE: ClassVar[int] = 0x0400  # Generic Glucose Meter
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x1808,)

    measurement_characteristic: gatt.Characteristic[bytes]
    context_characteristic: gatt.Characteristic[bytes]
    racp: RacpServer[GlucoseRecord]
    store: RecordStore[GlucoseRecord]

    def _build_services(self) -> list[gatt.Service]:
        self.store = RecordStore()
        self.measurement_characteristic = self.characteristic(GlucoseMeasurement.UUID, _P.NOTIFY)
        self.context_characteristic = self.characteristic(GlucoseMeasurementContext.UUID, _P.NOTIFY)
        feature = self.characteristic(GlucoseFeature.UUID, _P.READ, read=self._feature)
        self.racp = RacpServer(
            self,
            self.store,
            self._send_record,
            report_needs=((self.measurement_characteristic, False),),
        )
        return [
            gatt.Service(
                gatt.GATT_GLUCOSE_SERVICE,
                [
                    self.measurement_characteristic,
                    self.context_characteristic,
                    feature,
                    self.racp.characteristic,
                ],
            )
        ]

    @staticmethod
    def _feature() -> GlucoseFeature:
        return GlucoseFeature(_FEATURES)

    @property
    def stored_records(self) -> tuple[GlucoseRecord, ...]:
        """The meter's memory, oldest first."""
        return tuple(record.value for record in self.store.records)

    def _on_link_down(self, link: Link) -> None:
        self.racp.link_down(link)

    async def measure(self, *, meal: Meal | None = None) -> GlucoseRecord:
        """Read a strip: the record is kept in memory and notified to a subscribed hub."""
        special = self.special_values_due()
        chosen = meal if meal is not None else self.rng.choice(_MEALS)
        with_context = self.rng.random() < 0.7  # noqa: PLR2004 - most readings get a meal tag
        milligrams = self.physiology.glucose(postprandial=chosen is Meal.POSTPRANDIAL)
        carbohydrate_grams = self.rng.randrange(20, 90)
        timestamp = self.timestamp()

        def build(sequence_number: int) -> GlucoseRecord:
            status = self._status(special=special)
            concentration = (
                Number.special_value(SpecialValue.NAN)
                if special
                else Number(milligrams, _MG_PER_DL_EXPONENT)
            )
            measurement = GlucoseMeasurement(
                sequence_number,
                timestamp,
                time_offset_min=0,
                glucose_concentration=concentration,
                type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
                sample_location=SampleLocation.FINGER,
                sensor_status_annunciation=status,
                context_information_follows=with_context,
            )
            context = None
            if with_context:
                carbohydrate_id = _CARBS.get(chosen)
                context = GlucoseMeasurementContext(
                    sequence_number,
                    carbohydrate_id=carbohydrate_id,
                    # Carbohydrate in kg, to the gram: grams * 10**-3.
                    carbohydrate=(
                        Number(carbohydrate_grams, -3) if carbohydrate_id is not None else None
                    ),
                    meal=chosen,
                    tester=Tester.SELF,
                    health=Health.NO_HEALTH_ISSUES,
                )
            return GlucoseRecord(sequence_number, measurement, context)

        if self.behaviours.store_offline:
            record = self.store.add(build)
            logger.debug("reading_stored", extra={"sequence_number": record.sequence_number})
        else:
            record = self.store.make(build)
        if self.subscribed(self.measurement_characteristic, indicate=False):
            await self._send_record(record)
            self.after_send()
        elif not self.behaviours.store_offline:
            logger.debug("reading_lost", extra={"sequence_number": record.sequence_number})
        return record.value

    def _status(self, *, special: bool) -> SensorStatus:
        status = SensorStatus(0)
        if self.low_battery:
            status |= SensorStatus.DEVICE_BATTERY_LOW
        if not self.device_clock.is_set:
            status |= SensorStatus.TIME_FAULT
        if special:
            status |= SensorStatus.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS
        return status

    async def _send_record(self, record: StoredRecord[GlucoseRecord]) -> bool:
        """Notify one record; return whether the link is still there for the next."""
        measurement, context = record.value.measurement, record.value.context
        if measurement is not None:
            await self.send(
                self.measurement_characteristic, measurement, indicate=False, measurement=True
            )
        if context is not None:
            # A lost measurement notification does not hold back its context: the hub pairs
            # them by sequence number and sees the gap, as over a real lossy link.
            await self.send(self.context_characteristic, context, indicate=False)
        return self.is_connected
