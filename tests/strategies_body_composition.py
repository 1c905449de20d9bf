"""Hypothesis strategies for the Body Composition codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, fixed_numbers, optional, user_ids

from device_profiles import Number, Scale
from device_profiles.body_composition import (
    BodyCompositionFeature,
    BodyCompositionFeatures,
    BodyCompositionMeasurement,
    HeightMeasurementResolution,
    MassMeasurementResolution,
    MeasurementUnits,
)

# Resolutions written as literals from the GSS field table, not taken from the module.
MASS_SCALES = {MeasurementUnits.SI: Scale(5, -3), MeasurementUnits.IMPERIAL: Scale(1, -2)}
LENGTH_SCALES = {MeasurementUnits.SI: Scale(1, -3), MeasurementUnits.IMPERIAL: Scale(1, -1)}
PERCENT = Scale(1, -1)
KILOJOULE = Scale(1, 0)
OHM = Scale(1, -1)


@st.composite
def body_composition_measurements(
    draw: st.DrawFn, *, multiple_packet: bool | None = None
) -> BodyCompositionMeasurement:
    """Every valid measurement: an unsuccessful one carries only time stamp and user ID."""
    units = draw(st.sampled_from(MeasurementUnits))
    mass = MASS_SCALES[units]
    body_fat: Number = draw(fixed_numbers(PERCENT, unsuccessful=True))
    measured = body_fat.special is None

    def value(scale: Scale) -> Number | None:
        return draw(optional(fixed_numbers(scale))) if measured else None

    return BodyCompositionMeasurement(
        body_fat,
        units,
        draw(optional(date_times)),
        draw(optional(user_ids)),
        basal_metabolism=value(KILOJOULE),
        muscle_percentage=value(PERCENT),
        muscle_mass=value(mass),
        fat_free_mass=value(mass),
        soft_lean_mass=value(mass),
        body_water_mass=value(mass),
        impedance=value(OHM),
        weight=value(mass),
        height=value(LENGTH_SCALES[units]),
        multiple_packet_measurement=(
            draw(st.booleans()) if multiple_packet is None else multiple_packet
        ),
    )


STRATEGIES = {
    BodyCompositionMeasurement: body_composition_measurements(),
    BodyCompositionFeature: st.builds(
        BodyCompositionFeature,
        st.integers(0, 0x07FF).map(BodyCompositionFeatures),
        # Reserved resolution codes are kept as sent, so they round-trip like defined ones.
        st.integers(0, 15).map(MassMeasurementResolution),
        st.integers(0, 7).map(HeightMeasurementResolution),
    ),
}
