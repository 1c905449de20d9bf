"""The quirk table and `apply_quirks`: lookups by DIS identity, and zero fills made absent."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies_blood_pressure import STRATEGIES as BP_STRATEGIES

from device_profiles import Number, Scale, SpecialValue, Unit
from device_profiles.blood_pressure import (
    BloodPressureMeasurement,
    BloodPressureStatus,
    EnhancedBloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_profiles.date_time import DateTime
from device_profiles.quirks import (
    QUIRKS,
    SIMULATOR_MANUFACTURER,
    QuirkRule,
    Quirks,
    apply_quirks,
    quirks_for,
)
from device_profiles.weight_scale import WeightMeasurement

ZERO_FILL = Quirks(zero_means_absent=frozenset({"mean_arterial_pressure", "pulse_rate"}))
NAN = Number.special_value(SpecialValue.NAN)
# SI resolutions of the Weight Measurement fields (GSS 0x2A9D field table).
MASS, BMI, LENGTH = Scale(5, -3), Scale(1, -1), Scale(1, -3)


MEAN, ZERO = Number(93, 0), Number(0, 0)


def _cuff(mean=MEAN, pulse=ZERO, **changes):
    fields = {
        "unit": Unit.MMHG,
        "timestamp": DateTime(2024, 5, 6, 7, 8, 9),
        "pulse_rate": pulse,
        "user_id": 2,
        "measurement_status": BloodPressureStatus.IRREGULAR_PULSE_DETECTED,
    }
    return BloodPressureMeasurement(Number(120, 0), Number(80, 0), mean, **(fields | changes))


def _without_warnings(measurement):
    return dataclasses.replace(measurement, warnings=())


# -- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "clock", "consent", "zeros"),
    [
        ("VB-BP-QCLOCK", True, False, frozenset()),
        ("VB-BP-QZERO", False, False, {"mean_arterial_pressure", "pulse_rate"}),
        ("VB-BP-QCLOCK-QZERO", True, False, {"mean_arterial_pressure", "pulse_rate"}),
        ("VB-WS-QCONSENT", False, True, frozenset()),
        ("VB-BC-QCONSENT", False, True, frozenset()),
    ],
)
def test_the_simulators_quirky_models_are_in_the_table(model, clock, consent, zeros):
    quirks = quirks_for(SIMULATOR_MANUFACTURER, model)
    assert quirks.set_clock_first is clock
    assert quirks.consent_before_send is consent
    assert quirks.zero_means_absent == zeros
    assert quirks.any
    assert "simulated" in quirks.source


@pytest.mark.parametrize("model", ["VB-BP200", "VB-WS300", "VB-BC500", "", None])
def test_the_simulators_well_behaved_models_have_no_quirks(model):
    assert quirks_for(SIMULATOR_MANUFACTURER, model) is Quirks.NONE
    assert not Quirks.NONE.any


@pytest.mark.parametrize(
    ("manufacturer", "model"),
    [
        ("  vitalbridge simulated DEVICES \t", "vb-bp-qclock"),
        ("VITALBRIDGE SIMULATED DEVICES", "  VB-BP-QClock  "),
    ],
)
def test_manufacturer_and_model_match_ignoring_case_and_surrounding_spaces(manufacturer, model):
    assert quirks_for(manufacturer, model).set_clock_first


@pytest.mark.parametrize(
    ("manufacturer", "model"),
    [
        ("Vitalbridge Simulated", "VB-BP-QCLOCK"),  # the manufacturer is exact, not a prefix
        ("Vitalbridge  Simulated Devices", "VB-BP-QCLOCK"),  # inner spaces count
        ("Other Medical", "VB-BP-QCLOCK"),
        (None, "VB-BP-QCLOCK"),
        (SIMULATOR_MANUFACTURER, "VB-BP-QZER0"),
        (SIMULATOR_MANUFACTURER, None),
    ],
)
def test_no_match_gives_no_quirks(manufacturer, model):
    assert quirks_for(manufacturer, model) is Quirks.NONE


def test_model_globs_and_firmware_globs():
    rules = (
        QuirkRule("Acme", "BP-1?0*", Quirks(set_clock_first=True, source="a")),
        QuirkRule("Acme", "*", Quirks(consent_before_send=True, source="b"), firmware="1.*"),
    )
    assert quirks_for("acme", "bp-150x", table=rules) == Quirks(set_clock_first=True, source="a")
    assert quirks_for("Acme", "BP-15", table=rules) is Quirks.NONE
    assert quirks_for("Acme", "BP-100", "2.0", table=rules).consent_before_send is False
    # A firmware rule needs the firmware to be known.
    assert quirks_for("Acme", "XYZ", None, table=rules) is Quirks.NONE
    assert quirks_for("Acme", "XYZ", " 1.4.2 ", table=rules) == Quirks(
        consent_before_send=True, source="b"
    )


def test_every_matching_rule_is_merged():
    rules = (
        QuirkRule("Acme", "BP-*", Quirks(set_clock_first=True, source="https://a.example")),
        QuirkRule(
            "Acme",
            "BP-2*",
            Quirks(zero_means_absent=frozenset({"pulse_rate"}), source="https://b.example"),
        ),
        QuirkRule(
            "Acme",
            "BP-2*",
            Quirks(
                zero_means_absent=frozenset({"mean_arterial_pressure"}), source="https://b.example"
            ),
        ),
    )
    merged = quirks_for("Acme", "BP-200", table=rules)
    assert merged == Quirks(
        set_clock_first=True,
        zero_means_absent=frozenset({"pulse_rate", "mean_arterial_pressure"}),
        source="https://a.example; https://b.example",
    )
    assert quirks_for("Acme", "BP-100", table=rules).zero_means_absent == frozenset()


def test_every_rule_says_where_its_quirk_is_documented_and_names_real_fields():
    names = {field.name for field in dataclasses.fields(BloodPressureMeasurement)} | {
        field.name for field in dataclasses.fields(WeightMeasurement)
    }
    for rule in QUIRKS:
        assert rule.quirks.source, rule
        assert rule.quirks.any, rule
        assert rule.quirks.zero_means_absent <= names, rule


# -- apply_quirks ------------------------------------------------------------------------------


def test_a_zero_pulse_rate_is_dropped_with_a_warning():
    fixed = apply_quirks(_cuff(), ZERO_FILL)
    assert fixed.pulse_rate is None
    assert fixed.warnings == (
        "pulse_rate: a zero the device sends when it did not measure; dropped",
    )
    # Everything else is as the device sent it.
    assert dataclasses.replace(fixed, pulse_rate=Number(0, 0), warnings=()) == _cuff()


def test_the_dropped_pulse_rate_leaves_the_wire_and_its_present_flag_is_cleared():
    fixed = apply_quirks(_cuff(), ZERO_FILL)
    data = fixed.encode()
    assert data[0] & 0x04 == 0  # Pulse Rate Present flag
    assert len(data) == len(_cuff().encode()) - 2  # one SFLOAT fewer
    assert BloodPressureMeasurement.decode(data) == _without_warnings(fixed)


def test_a_zero_mean_arterial_pressure_is_mandatory_so_it_becomes_nan():
    fixed = apply_quirks(_cuff(mean=Number(0, 0), pulse=Number(72, 0)), ZERO_FILL)
    assert fixed.mean_arterial_pressure == NAN
    assert fixed.pulse_rate == Number(72, 0)
    assert fixed.warnings == (
        (
            "mean_arterial_pressure: a zero the device sends when it did not measure; "
            "mandatory, so reported as NaN"
        ),
    )
    data = fixed.encode()
    assert data[5:7] == b"\xff\x07"  # SFLOAT NaN
    assert BloodPressureMeasurement.decode(data) == _without_warnings(fixed)


def test_zero_in_any_exponent_counts_and_the_warnings_keep_what_the_decoder_said():
    measurement = _cuff(mean=Number(0, -1), pulse=Number(0, 2), warnings=("flags: reserved",))
    fixed = apply_quirks(measurement, ZERO_FILL)
    assert fixed.mean_arterial_pressure == NAN
    assert fixed.pulse_rate is None
    assert fixed.warnings[0] == "flags: reserved"
    assert len(fixed.warnings) == 3


@pytest.mark.parametrize(
    "measurement",
    [
        _cuff(mean=Number(93, 0), pulse=Number(72, 0)),
        _cuff(mean=NAN, pulse=None),
        _cuff(mean=Number.special_value(SpecialValue.NRES), pulse=NAN),
    ],
)
def test_non_zero_and_special_values_are_kept_and_the_same_object_comes_back(measurement):
    assert apply_quirks(measurement, ZERO_FILL) is measurement


def test_no_quirks_and_unrelated_fields_change_nothing():
    measurement = _cuff(mean=Number(0, 0))
    assert apply_quirks(measurement, Quirks.NONE) is measurement
    unrelated = Quirks(zero_means_absent=frozenset({"pulse_rate", "no_such_field", "user_id"}))
    zero_user = _cuff(mean=Number(0, 0), pulse=Number(60, 0), user_id=0)
    assert apply_quirks(zero_user, unrelated) is zero_user


def test_a_measurement_without_the_field_is_returned_unchanged():
    cuff_pressure = IntermediateCuffPressure(Number(0, 0), pulse_rate=Number(0, 0))
    fixed = apply_quirks(cuff_pressure, ZERO_FILL)
    # No mean arterial pressure here; the zero pulse rate goes, the zero cuff pressure stays.
    assert fixed.cuff_pressure == Number(0, 0)
    assert fixed.pulse_rate is None
    assert IntermediateCuffPressure.decode(fixed.encode()) == _without_warnings(fixed)


def test_a_non_dataclass_value_is_returned_unchanged():
    assert apply_quirks(0, ZERO_FILL) == 0


def test_a_mandatory_fixed_point_zero_becomes_measurement_unsuccessful():
    weighing = WeightMeasurement(Number.fixed(0, MASS), user_id=1)
    fixed = apply_quirks(weighing, Quirks(zero_means_absent=frozenset({"weight"})))
    assert fixed.weight == Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL)
    assert "reported as MeasurementUnsuccessful" in fixed.warnings[0]
    assert WeightMeasurement.decode(fixed.encode()) == _without_warnings(fixed)


def test_a_mandatory_zero_with_no_absent_form_is_kept_with_a_warning_once():
    # An unsuccessful weight may not come with a BMI and height, so the zero cannot go.
    weighing = WeightMeasurement(
        Number.fixed(0, MASS),
        bmi=Number.fixed(220, BMI),
        height=Number.fixed(1750, LENGTH),
    )
    quirks = Quirks(zero_means_absent=frozenset({"weight"}))
    fixed = apply_quirks(weighing, quirks)
    assert fixed.weight == weighing.weight
    assert len(fixed.warnings) == 1
    assert "kept" in fixed.warnings[0]
    assert apply_quirks(fixed, quirks) == fixed


# -- properties --------------------------------------------------------------------------------

blood_pressures = st.one_of(
    BP_STRATEGIES[BloodPressureMeasurement], BP_STRATEGIES[EnhancedBloodPressureMeasurement]
)
field_sets = st.frozensets(
    st.sampled_from(["mean_arterial_pressure", "pulse_rate", "systolic", "diastolic", "unit"])
)


def _named_fields_are_zero(measurement, names):
    return any(
        isinstance(value := getattr(measurement, name), Number)
        and value.is_number
        and value.mantissa == 0
        for name in names
    )


@given(blood_pressures, field_sets)
def test_measurements_without_zeros_in_the_named_fields_are_never_changed(measurement, names):
    assume(not _named_fields_are_zero(measurement, names))
    assert apply_quirks(measurement, Quirks(zero_means_absent=names)) is measurement


@given(blood_pressures, field_sets)
def test_apply_quirks_is_idempotent_and_what_it_returns_round_trips(measurement, names):
    quirks = Quirks(zero_means_absent=names)
    once = apply_quirks(measurement, quirks)
    assert apply_quirks(once, quirks) == once
    assert not _named_fields_are_zero(once, names)
    assert type(once).decode(once.encode()) == _without_warnings(once)
