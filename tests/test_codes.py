"""The verified MDC, LOINC and UCUM codes of every quantity, pinned as literals.

Each MDC code is also split into (partition, term code): context-free code = partition * 65536 +
term. Partitions: OBJ 1, SCADA 2, PHD_DM 128, PHD_HF 129. Sources are the labels of the
`device_profiles.codes` module docstring.
"""

from __future__ import annotations

import pytest

from device_profiles import CODES, Quantity, Unit
from device_profiles.codes import code_for

PARTITION = 65536


def _check(quantity, mdc, reference_id, partition_term, loinc, ucum):
    entry = code_for(quantity)
    assert entry is CODES[quantity]
    assert entry.quantity is quantity
    assert entry.mdc_code == mdc
    assert entry.mdc_reference_id == reference_id
    if mdc is not None:
        assert divmod(mdc, PARTITION) == partition_term
    assert entry.loinc == loinc
    assert entry.ucum is ucum
    assert entry.source.startswith("MDC: ")
    assert "; LOINC: " in entry.source


@pytest.mark.parametrize(
    ("quantity", "mdc", "reference_id", "partition_term", "loinc", "ucum"),
    [
        # MDC: HL7/phd compound-numeric-blood-pressure.json; signove/antidote
        # blood_pressure_monitor.h (term 18949). LOINC: FHIR R4 vital signs.
        (
            Quantity.SYSTOLIC_PRESSURE,
            150021,
            "MDC_PRESS_BLD_NONINV_SYS",
            (2, 18949),
            "8480-6",
            Unit.MMHG,
        ),
        # Same sources (term 18950).
        (
            Quantity.DIASTOLIC_PRESSURE,
            150022,
            "MDC_PRESS_BLD_NONINV_DIA",
            (2, 18950),
            "8462-4",
            Unit.MMHG,
        ),
        # Same MDC sources (term 18951). LOINC: FHIR R4 example "mbp" (Mean blood pressure).
        (
            Quantity.MEAN_ARTERIAL_PRESSURE,
            150023,
            "MDC_PRESS_BLD_NONINV_MEAN",
            (2, 18951),
            "8478-0",
            Unit.MMHG,
        ),
        # MDC: MD PnP OpenICE DDS header, MDC_PRESS_CUFF 19228 (CUFF_SYS 19229 is 150301).
        (Quantity.CUFF_PRESSURE, 150300, "MDC_PRESS_CUFF", (2, 19228), None, Unit.MMHG),
        # MDC: HL7/phd ProfileConsumers.md (149546 -> 8867-4); antidote term 18474.
        (
            Quantity.PULSE_RATE,
            149546,
            "MDC_PULS_RATE_NON_INV",
            (2, 18474),
            "8867-4",
            Unit.PER_MINUTE,
        ),
    ],
)
def test_blood_pressure_codes(quantity, mdc, reference_id, partition_term, loinc, ucum):
    _check(quantity, mdc, reference_id, partition_term, loinc, ucum)


@pytest.mark.parametrize(
    ("quantity", "mdc", "reference_id", "partition_term", "loinc", "ucum"),
    [
        # MDC: antidote pulse_oximeter.h, folterj/IEEE11073Analyser (term 19384).
        # LOINC: FHIR R4 oxygen saturation profile.
        (Quantity.SPO2, 150456, "MDC_PULS_OXIM_SAT_O2", (2, 19384), "59408-5", Unit.PERCENT),
        # MDC: HL7/phd ProfileConsumers.md (149530); antidote term 18458.
        # LOINC: Heart rate by Pulse oximetry.
        (
            Quantity.PLX_PULSE_RATE,
            149530,
            "MDC_PULS_OXIM_PULS_RATE",
            (2, 18458),
            "8889-8",
            Unit.PER_MINUTE,
        ),
        # MDC: folterj/IEEE11073Analyser nomenclature.h (term 19376).
        # LOINC: Perfusion index Tissue by Pulse oximetry.
        (
            Quantity.PULSE_AMPLITUDE_INDEX,
            150448,
            "MDC_PULS_OXIM_PERF_REL",
            (2, 19376),
            "61006-3",
            Unit.PERCENT,
        ),
    ],
)
def test_pulse_oximetry_codes(quantity, mdc, reference_id, partition_term, loinc, ucum):
    _check(quantity, mdc, reference_id, partition_term, loinc, ucum)


@pytest.mark.parametrize(
    ("quantity", "mdc", "reference_id", "partition_term", "loinc", "ucum"),
    [
        # MDC: antidote nomenclature.h and weighing_scale.h. LOINC: FHIR R4 vital signs.
        (
            Quantity.BODY_WEIGHT,
            188736,
            "MDC_MASS_BODY_ACTUAL",
            (2, 57664),
            "29463-7",
            Unit.KILOGRAM,
        ),
        (Quantity.BODY_HEIGHT, 188740, "MDC_LEN_BODY_ACTUAL", (2, 57668), "8302-2", Unit.METRE),
        (
            Quantity.BMI,
            188752,
            "MDC_RATIO_MASS_BODY_LEN_SQ",
            (2, 57680),
            "39156-5",
            Unit.KG_PER_M2,
        ),
        # MDC: antidote, folterj (term 57676). LOINC: Percentage of body fat Measured.
        (
            Quantity.BODY_FAT_PERCENTAGE,
            188748,
            "MDC_BODY_FAT",
            (2, 57676),
            "41982-0",
            Unit.PERCENT,
        ),
        # MDC: public 11073 nomenclature tables (several agree). No LOINC confirmed.
        (
            Quantity.FAT_FREE_MASS,
            188756,
            "MDC_MASS_BODY_FAT_FREE",
            (2, 57684),
            None,
            Unit.KILOGRAM,
        ),
        (
            Quantity.SOFT_LEAN_MASS,
            188760,
            "MDC_MASS_BODY_SOFT_LEAN",
            (2, 57688),
            None,
            Unit.KILOGRAM,
        ),
        (Quantity.BODY_WATER_MASS, 188764, "MDC_BODY_WATER", (2, 57692), None, Unit.KILOGRAM),
        # MDC: LNI Java Mdc class only (single public source). No LOINC confirmed.
        (
            Quantity.BASAL_METABOLISM,
            188768,
            "MDC_BASAL_METABOLISM",
            (2, 57696),
            None,
            Unit.KILOJOULE,
        ),
        (Quantity.MUSCLE_PERCENTAGE, 188772, "MDC_BODY_MUSCLE", (2, 57700), None, Unit.PERCENT),
        (
            Quantity.MUSCLE_MASS,
            188776,
            "MDC_MASS_BODY_MUSCLE",
            (2, 57704),
            None,
            Unit.KILOGRAM,
        ),
        (
            Quantity.IMPEDANCE,
            188780,
            "MDC_BODY_ELECTRICAL_IMPEDANCE",
            (2, 57708),
            None,
            Unit.OHM,
        ),
    ],
)
def test_weight_and_body_composition_codes(
    quantity, mdc, reference_id, partition_term, loinc, ucum
):
    _check(quantity, mdc, reference_id, partition_term, loinc, ucum)


def test_body_temperature_code():
    # MDC and LOINC: HL7/phd temperature-observation.json; antidote term 19292; FHIR R4.
    _check(Quantity.BODY_TEMPERATURE, 150364, "MDC_TEMP_BODY", (2, 19292), "8310-5", Unit.CELSIUS)


@pytest.mark.parametrize(
    ("quantity", "mdc", "reference_id", "partition_term", "loinc", "ucum"),
    [
        # MDC: HL7/phd compound-observation-glucose.json; antidote glucometer.h (29112).
        # LOINC: Glucose [Mass/volume] in Capillary blood by Glucometer.
        (
            Quantity.GLUCOSE_CONCENTRATION,
            160184,
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
            (2, 29112),
            "41653-7",
            Unit.MG_PER_DL,
        ),
        # MDC: folterj/IEEE11073Analyser, PHD_DM partition (HL7/phd 8417864 MDC_CTXT_GLU_MEAL
        # is 29256 in the same table). LOINC: Carbohydrate intake Estimated.
        (Quantity.CARBOHYDRATE, 8417764, "MDC_CTXT_GLU_CARB", (128, 29156), "9059-7", Unit.GRAM),
        # Same table (29152); the duration is the exercise term's Measure-Active-Period.
        # LOINC: Exercise duration.
        (
            Quantity.EXERCISE_DURATION,
            8417760,
            "MDC_CTXT_GLU_EXERCISE",
            (128, 29152),
            "55411-3",
            Unit.SECOND,
        ),
        (
            Quantity.EXERCISE_INTENSITY,
            8417760,
            "MDC_CTXT_GLU_EXERCISE",
            (128, 29152),
            None,
            Unit.PERCENT,
        ),
        # Same table (29188).
        (
            Quantity.MEDICATION,
            8417796,
            "MDC_CTXT_MEDICATION",
            (128, 29188),
            None,
            Unit.MILLIGRAM,
        ),
        # MDC: folterj (SCADA 29148). LOINC: Hemoglobin A1c/Hemoglobin.total in Blood.
        (Quantity.HBA1C, 160220, "MDC_CONC_HBA1C", (2, 29148), "4548-4", Unit.PERCENT),
    ],
)
def test_glucose_codes(quantity, mdc, reference_id, partition_term, loinc, ucum):
    _check(quantity, mdc, reference_id, partition_term, loinc, ucum)


@pytest.mark.parametrize(
    ("quantity", "mdc", "reference_id", "partition_term", "loinc", "ucum"),
    [
        # MDC: HL7/phd Nomenclaturecodes.md (147842). LOINC: FHIR R4 heart rate.
        (
            Quantity.HEART_RATE,
            147842,
            "MDC_ECG_HEART_RATE",
            (2, 16770),
            "8867-4",
            Unit.PER_MINUTE,
        ),
        # MDC: 11073 nomenclature tables, term 119 in PHD_HF. No LOINC confirmed.
        (Quantity.ENERGY_EXPENDED, 8454263, "MDC_HF_ENERGY", (129, 119), None, Unit.KILOJOULE),
        # MDC: MII kerndatensatz-kardiologie MII_EXA_Kardio_EKG_RR_Interval.fsh (147240).
        # LOINC: R-R interval by EKG.
        (
            Quantity.RR_INTERVAL,
            147240,
            "MDC_ECG_TIME_PD_RR_GL",
            (2, 16168),
            "8637-1",
            Unit.SECOND,
        ),
    ],
)
def test_heart_rate_codes(quantity, mdc, reference_id, partition_term, loinc, ucum):
    _check(quantity, mdc, reference_id, partition_term, loinc, ucum)


def test_battery_level_code():
    # MDC: antidote and folterj (OBJ 2460); a Danish PHD FHIR example reports 67996 in %.
    _check(Quantity.BATTERY_LEVEL, 67996, "MDC_ATTR_VAL_BATT_CHARGE", (1, 2460), None, Unit.PERCENT)


def test_every_quantity_is_pinned():
    # One literal row per quantity above; a new quantity needs a verified row here.
    assert len(CODES) == len(Quantity) == 30


def test_reproduces_the_known_systolic_code():
    # MDC_PRESS_BLD_NONINV_SYS: partition SCADA 2, term 18949 -> 150021.
    assert 2 * PARTITION + 18949 == 150021 == CODES[Quantity.SYSTOLIC_PRESSURE].mdc_code
