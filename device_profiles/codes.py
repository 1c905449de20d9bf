"""Each measured quantity the codecs return, with its IEEE 11073-10101 MDC code, LOINC and UCUM.

Sources (cited per entry in `source`):
- [PHD] HL7 Personal Health Device Implementation Guide (HL7/phd), code tables and the
  "Mapping of Bluetooth GHS/SIG observations" pages; MDC context-free codes are
  partition * 65536 + term code.
- [RTMMS] NIST Rosetta Terminology Mapping Management System (IEEE 11073-10101 nomenclature).
- [VS] FHIR R4 vital-signs profiles (http://hl7.org/fhir/R4/observation-vitalsigns.html) for LOINC.
- [LOINC] LOINC database entries, where a vital-signs profile has none.
`loinc` is None where LOINC has no code for the quantity as the device measures it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from device_profiles.units import Unit, can_convert, convert, to_canonical

if TYPE_CHECKING:
    from device_profiles.ieee11073 import Number

__all__ = ["CODES", "CodeEntry", "Observation", "Quantity", "canonical", "code_for"]


class Quantity(enum.StrEnum):
    """A kind of measured value, independent of the characteristic that carried it."""

    SYSTOLIC_PRESSURE = "systolic_pressure"
    DIASTOLIC_PRESSURE = "diastolic_pressure"
    MEAN_ARTERIAL_PRESSURE = "mean_arterial_pressure"
    CUFF_PRESSURE = "cuff_pressure"
    PULSE_RATE = "pulse_rate"
    SPO2 = "spo2"
    PLX_PULSE_RATE = "plx_pulse_rate"
    PULSE_AMPLITUDE_INDEX = "pulse_amplitude_index"
    BODY_WEIGHT = "body_weight"
    BODY_HEIGHT = "body_height"
    BMI = "bmi"
    BODY_FAT_PERCENTAGE = "body_fat_percentage"
    BASAL_METABOLISM = "basal_metabolism"
    MUSCLE_PERCENTAGE = "muscle_percentage"
    MUSCLE_MASS = "muscle_mass"
    FAT_FREE_MASS = "fat_free_mass"
    SOFT_LEAN_MASS = "soft_lean_mass"
    BODY_WATER_MASS = "body_water_mass"
    IMPEDANCE = "impedance"
    BODY_TEMPERATURE = "body_temperature"
    GLUCOSE_CONCENTRATION = "glucose_concentration"
    CARBOHYDRATE = "carbohydrate"
    EXERCISE_DURATION = "exercise_duration"
    EXERCISE_INTENSITY = "exercise_intensity"
    MEDICATION = "medication"
    HBA1C = "hba1c"
    HEART_RATE = "heart_rate"
    ENERGY_EXPENDED = "energy_expended"
    RR_INTERVAL = "rr_interval"
    BATTERY_LEVEL = "battery_level"


class Observation(NamedTuple):
    """One measured value of a decoded result: which field, what quantity, value and unit."""

    field: str
    quantity: Quantity
    value: Number
    unit: Unit


@dataclass(frozen=True, slots=True)
class CodeEntry:
    """The standard codes of one quantity."""

    quantity: Quantity
    mdc_code: int | None
    mdc_reference_id: str | None
    loinc: str | None
    ucum: Unit
    source: str


def _entry(
    quantity: Quantity,
    mdc_code: int | None,
    mdc_reference_id: str | None,
    loinc: str | None,
    ucum: Unit,
    source: str,
) -> tuple[Quantity, CodeEntry]:
    return quantity, CodeEntry(quantity, mdc_code, mdc_reference_id, loinc, ucum, source)


Q = Quantity
CODES: Final[dict[Quantity, CodeEntry]] = dict(
    (
        _entry(
            Q.SYSTOLIC_PRESSURE, 150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6", Unit.MMHG, "PHD; VS"
        ),
        _entry(
            Q.DIASTOLIC_PRESSURE, 150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4", Unit.MMHG, "PHD; VS"
        ),
        _entry(
            Q.MEAN_ARTERIAL_PRESSURE,
            150023,
            "MDC_PRESS_BLD_NONINV_MEAN",
            "8478-0",
            Unit.MMHG,
            "PHD; VS",
        ),
        _entry(Q.CUFF_PRESSURE, 150036, "MDC_PRESS_CUFF", None, Unit.MMHG, "RTMMS"),
        _entry(Q.PULSE_RATE, 149546, "MDC_PULS_RATE_NON_INV", "8867-4", Unit.PER_MINUTE, "PHD; VS"),
        _entry(Q.SPO2, 150456, "MDC_PULS_OXIM_SAT_O2", "59408-5", Unit.PERCENT, "PHD; VS"),
        _entry(
            Q.PLX_PULSE_RATE,
            149530,
            "MDC_PULS_OXIM_PULS_RATE",
            "8889-8",
            Unit.PER_MINUTE,
            "PHD; LOINC",
        ),
        _entry(
            Q.PULSE_AMPLITUDE_INDEX,
            150488,
            "MDC_PULS_OXIM_PERF_REL",
            "61006-3",
            Unit.PERCENT,
            "PHD; LOINC",
        ),
        _entry(Q.BODY_WEIGHT, 188736, "MDC_MASS_BODY_ACTUAL", "29463-7", Unit.KILOGRAM, "PHD; VS"),
        _entry(Q.BODY_HEIGHT, 188740, "MDC_LEN_BODY_ACTUAL", "8302-2", Unit.METRE, "PHD; VS"),
        _entry(Q.BMI, 188752, "MDC_RATIO_MASS_BODY_LEN_SQ", "39156-5", Unit.KG_PER_M2, "PHD; VS"),
        _entry(
            Q.BODY_FAT_PERCENTAGE, 188748, "MDC_BODY_FAT", "41982-0", Unit.PERCENT, "PHD; LOINC"
        ),
        _entry(Q.BASAL_METABOLISM, None, None, None, Unit.KILOJOULE, "PHD: no MDC term"),
        _entry(Q.MUSCLE_PERCENTAGE, None, None, None, Unit.PERCENT, "PHD: no MDC term"),
        _entry(Q.MUSCLE_MASS, None, None, None, Unit.KILOGRAM, "PHD: no MDC term"),
        _entry(Q.FAT_FREE_MASS, 188756, "MDC_MASS_BODY_FAT_FREE", None, Unit.KILOGRAM, "RTMMS"),
        _entry(Q.SOFT_LEAN_MASS, 188760, "MDC_MASS_BODY_SOFT_LEAN", None, Unit.KILOGRAM, "RTMMS"),
        _entry(Q.BODY_WATER_MASS, 188764, "MDC_MASS_BODY_WATER", None, Unit.KILOGRAM, "RTMMS"),
        _entry(Q.IMPEDANCE, 188744, "MDC_BODY_IMPEDANCE", None, Unit.OHM, "RTMMS"),
        _entry(Q.BODY_TEMPERATURE, 150364, "MDC_TEMP_BODY", "8310-5", Unit.CELSIUS, "PHD; VS"),
        _entry(
            Q.GLUCOSE_CONCENTRATION,
            160184,
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
            "41653-7",
            Unit.MG_PER_DL,
            "PHD; LOINC",
        ),
        _entry(
            Q.CARBOHYDRATE,
            8417752,
            "MDC_GLU_CONTEXT_CARBOHYDRATES",
            "9059-7",
            Unit.GRAM,
            "PHD; LOINC",
        ),
        _entry(
            Q.EXERCISE_DURATION,
            8417768,
            "MDC_CTXT_GLU_EXERCISE",
            "55411-3",
            Unit.SECOND,
            "PHD; LOINC",
        ),
        _entry(Q.EXERCISE_INTENSITY, 8417768, "MDC_CTXT_GLU_EXERCISE", None, Unit.PERCENT, "PHD"),
        _entry(Q.MEDICATION, 8417776, "MDC_CTXT_MEDICATION", None, Unit.MILLIGRAM, "PHD"),
        _entry(Q.HBA1C, 160220, "MDC_CONC_HBA1C", "4548-4", Unit.PERCENT, "PHD; LOINC"),
        _entry(Q.HEART_RATE, 147842, "MDC_ECG_HEART_RATE", "8867-4", Unit.PER_MINUTE, "PHD; VS"),
        _entry(Q.ENERGY_EXPENDED, None, None, None, Unit.KILOJOULE, "no MDC or LOINC term"),
        _entry(
            Q.RR_INTERVAL, 147240, "MDC_ECG_TIME_PD_RR_GL", "8637-1", Unit.SECOND, "RTMMS; LOINC"
        ),
        _entry(Q.BATTERY_LEVEL, 67996, "MDC_ATTR_VAL_BATT_CHARGE", None, Unit.PERCENT, "PHD"),
    )
)


def code_for(quantity: Quantity) -> CodeEntry:
    """Return the standard codes of a quantity."""
    return CODES[quantity]


def canonical(observation: Observation) -> tuple[Number, Unit]:
    """Convert an observation to its quantity's canonical unit (by dimension when that differs).

    Medication is the one quantity reported in two dimensions (mass or volume): a volume goes
    to mL, since no exact conversion to the canonical mass exists.
    """
    target = CODES[observation.quantity].ucum
    if can_convert(observation.unit, target):
        return convert(observation.value, observation.unit, target), target
    return to_canonical(observation.value, observation.unit)
