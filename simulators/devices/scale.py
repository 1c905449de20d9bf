"""Bathroom scales: a multi-user weight scale (WSS + UDS) and a body composition scale (adds BCS).

A reading belongs to the user consented on the link, to the user `measure` names (the scale
recognised them), or to the unknown user 0xFF. Known users get BMI and height, and on the body
composition scale a full bioimpedance analysis; for an unknown user the scale reports the weight
only and body fat as "measurement unsuccessful", since it lacks the height and age it needs.
Body Composition Measurements longer than the link's ATT_MTU allows are split into packets with
`body_composition.split`. Readings nobody received are kept and sent once a hub subscribes, or
after it gives consent for their user.

Two vendor quirks can be switched on (Behaviours): `consent_required_to_send`, a scale that sends
no reading at all on a link, not even an unknown user's, until the hub gives UDS consent on it,
and `requires_clock_set`, one that sends nothing until the hub writes Current Time on the link.
Either way the readings are kept meanwhile and sent once the hub has done what the scale needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar, Final

from bumble import gatt

from device_profiles import Number, Scale, SpecialValue
from device_profiles.body_composition import (
    BodyCompositionFeature,
    BodyCompositionFeatures,
    BodyCompositionMeasurement,
    split,
)
from device_profiles.user_data import UNKNOWN_USER
from device_profiles.weight_scale import (
    HeightMeasurementResolution,
    MeasurementUnits,
    WeightMeasurement,
    WeightMeasurementResolution,
    WeightScaleFeature,
    WeightScaleFeatures,
)
from simulators.devices.base import Link, SimulatedDevice
from simulators.devices.physiology import BodyReading, Physiology
from simulators.devices.users import UserDataServer

__all__ = ["BodyCompositionScale", "ScaleReading", "WeightScale"]

logger = logging.getLogger(__name__)

_P = gatt.Characteristic.Properties
_SI: Final = MeasurementUnits.SI
_TENTHS: Final = Scale(1, -1)
_WHOLE: Final = Scale(1, 0)
# The scale resolves 0.05 kg: ten of the 0.005 kg wire units.
_MASS_STEP_KG: Final = 0.05
_MASS_UNITS_PER_STEP: Final = 10
_UNSUCCESSFUL: Final = Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL)


def _kilograms(value: float) -> Number:
    return Number.fixed(round(value / _MASS_STEP_KG) * _MASS_UNITS_PER_STEP, _SI.mass_scale)


def _metres(value: float) -> Number:
    return Number.fixed(round(value * 1000), _SI.length_scale)


def _tenths(value: float) -> Number:
    return Number.fixed(round(value * 10), _TENTHS)


@dataclass(frozen=True, slots=True)
class ScaleReading:
    """One weighing: the Weight Measurement and, on a body composition scale, its analysis."""

    weight: WeightMeasurement
    body_composition: BodyCompositionMeasurement | None = None

    @property
    def user_id(self) -> int:
        """The user the reading belongs to (0xFF: unknown)."""
        return UNKNOWN_USER if self.weight.user_id is None else self.weight.user_id


class WeightScale(SimulatedDevice):
    """A multi-user weight scale (WSS 0x181D with UDS 0x181C and Current Time)."""

    KIND: ClassVar[str] = "weight_scale"
    DEFAULT_NAME: ClassVar[str] = "VB Scale"
    MODEL: ClassVar[str] = "VB-WS300"
    APPEARANCE: ClassVar[int] = 0x0C80  # Generic Weight Scale
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x181D,)
    QUIRKS_SIMULATED: ClassVar[frozenset[str]] = frozenset(
        {"consent_required_to_send", "requires_clock_set"}
    )

    weight_characteristic: gatt.Characteristic[bytes]
    users: UserDataServer
    _memory: list[ScaleReading]

    def _build_services(self) -> list[gatt.Service]:
        self._memory = []
        self.users = UserDataServer(self, on_consent=self._on_consent)
        self.weight_characteristic = self.characteristic(WeightMeasurement.UUID, _P.INDICATE)
        feature = self.characteristic(
            WeightScaleFeature.UUID,
            _P.READ,
            read=lambda: WeightScaleFeature(
                WeightScaleFeatures.TIME_STAMP_SUPPORTED
                | WeightScaleFeatures.MULTIPLE_USERS_SUPPORTED
                | WeightScaleFeatures.BMI_SUPPORTED,
                WeightMeasurementResolution.KG_0_05_OR_LB_0_1,
                HeightMeasurementResolution.M_0_001_OR_IN_0_1,
            ),
        )
        self.weight_characteristic.on(gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)
        return [
            gatt.Service(gatt.GATT_WEIGHT_SCALE_SERVICE, [self.weight_characteristic, feature]),
            self.users.service(),
        ]

    @property
    def stored_records(self) -> tuple[ScaleReading, ...]:
        """Readings not yet delivered, oldest first."""
        return tuple(self._memory)

    def _physiology(self, user_index: int) -> Physiology:
        household = self.config.household
        if 1 <= user_index <= len(household):
            return Physiology(household[user_index - 1], self.rng)
        return self.physiology

    async def measure(self, *, user_index: int | None = None) -> ScaleReading:
        """Weigh someone: the consented user, `user_index`, or an unknown user."""
        if user_index is None:
            link = self.link
            user_index = link.user_index if link is not None else UNKNOWN_USER
        special = self.special_values_due()
        known = user_index != UNKNOWN_USER and not special
        body = self._physiology(user_index).body()
        reading = self._reading(body, user_index, known=known, special=special)
        if self.subscribed(self.weight_characteristic, indicate=True) and await self._deliver(
            reading
        ):
            self.after_send()
            return reading
        if self.behaviours.store_offline:
            self._memory.append(reading)
            logger.debug("reading_stored", extra={"stored": len(self._memory)})
        return reading

    def _reading(
        self, body: BodyReading, user_index: int, *, known: bool, special: bool
    ) -> ScaleReading:
        weight = WeightMeasurement(
            _UNSUCCESSFUL if special else _kilograms(body.weight_kg),
            _SI,
            self.timestamp(),
            user_index,
            _tenths(body.bmi) if known else None,
            _metres(body.height_m) if known else None,
        )
        return ScaleReading(weight)

    @property
    def consent_released(self) -> bool:
        """Whether the consent quirk lets the scale send readings on the link now."""
        if not self.behaviours.consent_required_to_send:
            return True
        link = self.link
        return link is not None and link.user_index != UNKNOWN_USER

    async def _deliver(self, reading: ScaleReading) -> bool:
        """Indicate one reading (and its analysis); return whether all of it went out."""
        if not (self.consent_released and self.measurements_released):
            return False
        return await self.send(
            self.weight_characteristic, reading.weight, indicate=True, measurement=True
        )

    def _on_subscription(self, bearer: object, notify: bool, indicate: bool) -> None:
        del bearer, notify
        if indicate and self._memory:
            self.spawn(self._flush(), "flush")

    def _on_consent(self, link: Link) -> None:
        del link
        if self._memory:
            self.spawn(self._flush(), "flush")

    def _on_clock_written(self, link: Link) -> None:
        del link
        if self._memory and self.subscribed(self.weight_characteristic, indicate=True):
            self.spawn(self._flush(), "flush")

    async def _flush(self) -> None:
        link = self.link
        if link is None:
            return
        mine = {UNKNOWN_USER, link.user_index}
        for reading in [r for r in self._memory if r.user_id in mine]:
            if not any(kept is reading for kept in self._memory):
                continue  # another flush sent it meanwhile
            if not await self._deliver(reading):
                return
            self._memory = [kept for kept in self._memory if kept is not reading]
        self.after_send()


class BodyCompositionScale(WeightScale):
    """A body composition (bioimpedance) scale: WSS and BCS 0x181B, with UDS, multi-packet."""

    KIND: ClassVar[str] = "body_composition_scale"
    DEFAULT_NAME: ClassVar[str] = "VB Body Scale"
    MODEL: ClassVar[str] = "VB-BC500"
    ADVERTISED_SERVICES: ClassVar[tuple[int, ...]] = (0x181D, 0x181B)

    body_composition_characteristic: gatt.Characteristic[bytes]

    def _build_services(self) -> list[gatt.Service]:
        services = super()._build_services()
        self.body_composition_characteristic = self.characteristic(
            BodyCompositionMeasurement.UUID, _P.INDICATE
        )
        feature = self.characteristic(
            BodyCompositionFeature.UUID,
            _P.READ,
            read=lambda: BodyCompositionFeature(
                BodyCompositionFeatures(0x07FF),  # every field, multiple users included
                WeightMeasurementResolution.KG_0_05_OR_LB_0_1,
                HeightMeasurementResolution.M_0_001_OR_IN_0_1,
            ),
        )
        return [
            *services,
            gatt.Service(
                gatt.GATT_BODY_COMPOSITION_SERVICE, [feature, self.body_composition_characteristic]
            ),
        ]

    def _reading(
        self, body: BodyReading, user_index: int, *, known: bool, special: bool
    ) -> ScaleReading:
        weight = super()._reading(body, user_index, known=known, special=special).weight
        timestamp, user = weight.timestamp, weight.user_id
        if not known:
            analysis = BodyCompositionMeasurement(_UNSUCCESSFUL, _SI, timestamp, user)
            return ScaleReading(weight, analysis)
        analysis = BodyCompositionMeasurement(
            _tenths(body.body_fat_percent),
            _SI,
            timestamp,
            user,
            basal_metabolism=Number.fixed(body.basal_metabolism_kj, _WHOLE),
            muscle_percentage=_tenths(body.muscle_percent),
            muscle_mass=_kilograms(body.muscle_mass_kg),
            fat_free_mass=_kilograms(body.fat_free_mass_kg),
            soft_lean_mass=_kilograms(body.soft_lean_mass_kg),
            body_water_mass=_kilograms(body.body_water_mass_kg),
            impedance=_tenths(body.impedance_ohm),
            weight=weight.weight,
            height=weight.height,
        )
        return ScaleReading(weight, analysis)

    async def _deliver(self, reading: ScaleReading) -> bool:
        if not await super()._deliver(reading):
            return False
        analysis = reading.body_composition
        link = self.link
        if analysis is None or link is None:
            return link is not None
        if not self.subscribed(self.body_composition_characteristic, indicate=True):
            return True
        # An indication carries ATT_MTU - 3 octets; a longer measurement goes in packets.
        for packet in split(analysis, link.connection.att_mtu - 3):
            if not await self.send(
                self.body_composition_characteristic, packet, indicate=True, measurement=True
            ):
                return False
        return True
