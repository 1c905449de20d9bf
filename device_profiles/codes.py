"""Each measured quantity the codecs return, with its IEEE 11073-10101 MDC code, LOINC and UCUM.

MDC codes are context-free: partition * 65536 + term code (partitions OBJ 1, SCADA 2, PHD_DM 128,
PHD_HF 129). Each entry's `source` names where its MDC code and its LOINC code were checked:
- [PHD] HL7 Personal Health Device IG source, repository HL7/phd: input/examples/
  compound-numeric-blood-pressure.json (150021-150023), temperature-observation.json (150364,
  8310-5), compound-observation-glucose.json (160184; PHD_DM offset checked on 8417864 and
  8417872), input/pagecontent/ProfileConsumers.md (149546, 149530), Nomenclaturecodes.md (147842).
- [ANTIDOTE] signove/antidote src/specializations/*.h and src/dim/nomenclature.h (term codes).
- [X73A] folterj/IEEE11073Analyser phd/nomenclature.h (term codes with their partitions).
- [NOM] further public 11073 nomenclature tables (Java and C constant lists) that agree on
  MDC_MASS_BODY_FAT_FREE, MDC_MASS_BODY_SOFT_LEAN, MDC_BODY_WATER, MDC_ECG_TIME_PD_RR_GL and
  MDC_HF_ENERGY (term 119, partition PHD_HF).
- [LNI] a public Java Mdc class of the LNI PHD-to-FHIR encoder: the only public source found for
  MDC_BASAL_METABOLISM, MDC_BODY_MUSCLE, MDC_MASS_BODY_MUSCLE, MDC_BODY_ELECTRICAL_IMPEDANCE.
- [ICE] MD PnP OpenICE generated DDS header: MDC_PRESS_CUFF 19228 (CUFF_SYS/DIA/MEAN 19229-19231).
- [MII] medizininformatik-initiative/kerndatensatz-kardiologie
  input/fsh/instances/MII_EXA_Kardio_EKG_RR_Interval.fsh: 147240.
- [DK] a public Danish PHD FHIR example: battery level 67996 in %.
- [VS] FHIR R4 vital-signs profiles and examples (http://hl7.org/fhir/R4/observation-vitalsigns.html).
- [LOINC] LOINC codes by their LOINC names as used in public FHIR mappings, where no vital-signs
  profile applies.
`loinc` is None where LOINC has no code for the quantity as the device measures it, or where no
LOINC code could be confirmed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from device_profiles.units import Unit, can_convert, convert, to_canonical

if TYPE_CHECKING:
    from device_profiles.ieee11073 import Number

__all__ = ["CODES", "CodeEntry", "Observation", "Quantity", "canonical", "code_for", "loinc_for"]


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
            Q.SYSTOLIC_PRESSURE,
            150021,
            "MDC_PRESS_BLD_NONINV_SYS",
            "8480-6",
            Unit.MMHG,
            "MDC: PHD, ANTIDOTE; LOINC: VS, PHD",
        ),
        _entry(
            Q.DIASTOLIC_PRESSURE,
            150022,
            "MDC_PRESS_BLD_NONINV_DIA",
            "8462-4",
            Unit.MMHG,
            "MDC: PHD, ANTIDOTE; LOINC: VS, PHD",
        ),
        _entry(
            Q.MEAN_ARTERIAL_PRESSURE,
            150023,
            "MDC_PRESS_BLD_NONINV_MEAN",
            "8478-0",
            Unit.MMHG,
            "MDC: PHD, ANTIDOTE; LOINC: VS (R4 example mbp)",
        ),
        _entry(Q.CUFF_PRESSURE, 150300, "MDC_PRESS_CUFF", None, Unit.MMHG, "MDC: ICE; LOINC: none"),
        _entry(
            Q.PULSE_RATE,
            149546,
            "MDC_PULS_RATE_NON_INV",
            "8867-4",
            Unit.PER_MINUTE,
            "MDC: PHD, ANTIDOTE; LOINC: VS, PHD",
        ),
        _entry(
            Q.SPO2,
            150456,
            "MDC_PULS_OXIM_SAT_O2",
            "59408-5",
            Unit.PERCENT,
            "MDC: ANTIDOTE, X73A; LOINC: VS",
        ),
        _entry(
            Q.PLX_PULSE_RATE,
            149530,
            "MDC_PULS_OXIM_PULS_RATE",
            "8889-8",
            Unit.PER_MINUTE,
            "MDC: PHD, ANTIDOTE; LOINC: LOINC (Heart rate by Pulse oximetry)",
        ),
        _entry(
            Q.PULSE_AMPLITUDE_INDEX,
            150448,
            "MDC_PULS_OXIM_PERF_REL",
            "61006-3",
            Unit.PERCENT,
            "MDC: X73A, NOM; LOINC: LOINC (Perfusion index Tissue by Pulse oximetry)",
        ),
        _entry(
            Q.BODY_WEIGHT,
            188736,
            "MDC_MASS_BODY_ACTUAL",
            "29463-7",
            Unit.KILOGRAM,
            "MDC: ANTIDOTE, X73A; LOINC: VS",
        ),
        _entry(
            Q.BODY_HEIGHT,
            188740,
            "MDC_LEN_BODY_ACTUAL",
            "8302-2",
            Unit.METRE,
            "MDC: ANTIDOTE; LOINC: VS",
        ),
        _entry(
            Q.BMI,
            188752,
            "MDC_RATIO_MASS_BODY_LEN_SQ",
            "39156-5",
            Unit.KG_PER_M2,
            "MDC: ANTIDOTE; LOINC: VS",
        ),
        _entry(
            Q.BODY_FAT_PERCENTAGE,
            188748,
            "MDC_BODY_FAT",
            "41982-0",
            Unit.PERCENT,
            "MDC: ANTIDOTE, X73A; LOINC: LOINC (Percentage of body fat Measured)",
        ),
        _entry(
            Q.BASAL_METABOLISM,
            188768,
            "MDC_BASAL_METABOLISM",
            None,
            Unit.KILOJOULE,
            "MDC: LNI (single source); LOINC: none confirmed",
        ),
        _entry(
            Q.MUSCLE_PERCENTAGE,
            188772,
            "MDC_BODY_MUSCLE",
            None,
            Unit.PERCENT,
            "MDC: LNI (single source); LOINC: none confirmed",
        ),
        _entry(
            Q.MUSCLE_MASS,
            188776,
            "MDC_MASS_BODY_MUSCLE",
            None,
            Unit.KILOGRAM,
            "MDC: LNI (single source); LOINC: none confirmed",
        ),
        _entry(
            Q.FAT_FREE_MASS,
            188756,
            "MDC_MASS_BODY_FAT_FREE",
            None,
            Unit.KILOGRAM,
            "MDC: NOM, LNI; LOINC: none confirmed",
        ),
        _entry(
            Q.SOFT_LEAN_MASS,
            188760,
            "MDC_MASS_BODY_SOFT_LEAN",
            None,
            Unit.KILOGRAM,
            "MDC: NOM, LNI; LOINC: none confirmed",
        ),
        _entry(
            Q.BODY_WATER_MASS,
            188764,
            "MDC_BODY_WATER",
            None,
            Unit.KILOGRAM,
            "MDC: NOM, LNI; LOINC: none confirmed",
        ),
        _entry(
            Q.IMPEDANCE,
            188780,
            "MDC_BODY_ELECTRICAL_IMPEDANCE",
            None,
            Unit.OHM,
            "MDC: LNI (single source); LOINC: none confirmed",
        ),
        _entry(
            Q.BODY_TEMPERATURE,
            150364,
            "MDC_TEMP_BODY",
            "8310-5",
            Unit.CELSIUS,
            "MDC: PHD, ANTIDOTE; LOINC: VS, PHD",
        ),
        _entry(
            Q.GLUCOSE_CONCENTRATION,
            160184,
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
            "41653-7",
            Unit.MG_PER_DL,
            "MDC: PHD, ANTIDOTE; LOINC: LOINC (Glucose [Mass/volume] in Capillary blood by"
            " Glucometer)",
        ),
        _entry(
            Q.CARBOHYDRATE,
            8417764,
            "MDC_CTXT_GLU_CARB",
            "9059-7",
            Unit.GRAM,
            "MDC: X73A (PHD_DM); LOINC: LOINC (Carbohydrate intake Estimated)",
        ),
        _entry(
            Q.EXERCISE_DURATION,
            8417760,
            "MDC_CTXT_GLU_EXERCISE",
            "55411-3",
            Unit.SECOND,
            "MDC: X73A (PHD_DM; the duration is the exercise term's Measure-Active-Period);"
            " LOINC: LOINC (Exercise duration)",
        ),
        _entry(
            Q.EXERCISE_INTENSITY,
            8417760,
            "MDC_CTXT_GLU_EXERCISE",
            None,
            Unit.PERCENT,
            "MDC: X73A (PHD_DM); LOINC: none",
        ),
        _entry(
            Q.MEDICATION,
            8417796,
            "MDC_CTXT_MEDICATION",
            None,
            Unit.MILLIGRAM,
            "MDC: X73A (PHD_DM); LOINC: none",
        ),
        _entry(
            Q.HBA1C,
            160220,
            "MDC_CONC_HBA1C",
            "4548-4",
            Unit.PERCENT,
            "MDC: X73A; LOINC: LOINC (Hemoglobin A1c/Hemoglobin.total in Blood)",
        ),
        _entry(
            Q.HEART_RATE,
            147842,
            "MDC_ECG_HEART_RATE",
            "8867-4",
            Unit.PER_MINUTE,
            "MDC: PHD; LOINC: VS",
        ),
        _entry(
            Q.ENERGY_EXPENDED,
            8454263,
            "MDC_HF_ENERGY",
            None,
            Unit.KILOJOULE,
            "MDC: NOM (PHD_HF); LOINC: none confirmed",
        ),
        _entry(
            Q.RR_INTERVAL,
            147240,
            "MDC_ECG_TIME_PD_RR_GL",
            "8637-1",
            Unit.SECOND,
            "MDC: MII, NOM; LOINC: LOINC (R-R interval by EKG)",
        ),
        _entry(
            Q.BATTERY_LEVEL,
            67996,
            "MDC_ATTR_VAL_BATT_CHARGE",
            None,
            Unit.PERCENT,
            "MDC: ANTIDOTE, X73A (OBJ), DK; LOINC: none",
        ),
    )
)


def code_for(quantity: Quantity) -> CodeEntry:
    """Return the standard codes of a quantity."""
    return CODES[quantity]


# LOINC names the property (mass or moles per volume), so a quantity a device may report in
# either dimension has one LOINC per published unit. 14743-9: Glucose [Moles/volume] in
# Capillary blood by Glucometer (LOINC).
_LOINC_BY_UNIT: Final[dict[tuple[Quantity, Unit], str]] = {
    (Quantity.GLUCOSE_CONCENTRATION, Unit.MMOL_PER_LITRE): "14743-9",
}


def loinc_for(quantity: Quantity, unit: Unit) -> str | None:
    """Return the LOINC code of a quantity as published in `unit` (its canonical unit)."""
    return _LOINC_BY_UNIT.get((quantity, unit), CODES[quantity].loinc)


def canonical(observation: Observation) -> tuple[Number, Unit]:
    """Convert an observation to its quantity's canonical unit (by dimension when that differs).

    Medication is the one quantity reported in two dimensions (mass or volume): a volume goes
    to mL, since no exact conversion to the canonical mass exists.
    """
    target = CODES[observation.quantity].ucum
    if can_convert(observation.unit, target):
        return convert(observation.value, observation.unit, target), target
    return to_canonical(observation.value, observation.unit)
