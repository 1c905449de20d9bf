"""IEEE 11073-20601 SFLOAT/FLOAT: examples from the HL7 PHD IG tables and the special values."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import float_numbers, sfloat_numbers

from device_profiles import EncodeError, Number, Scale, SpecialValue
from device_profiles.ieee11073 import decode_float, decode_sfloat, encode_float, encode_sfloat

# HL7 PHD IG, "Mder FLOATs and SFLOATs", SFLOAT table: word, exponent, mantissa, FHIR encoding.
SFLOAT_TABLE = [
    (0x0002, 0, 2, "2"),
    (0xF014, -1, 20, "2.0"),
    (0xE0C8, -2, 200, "2.00"),
    (0x1002, 1, 2, "20"),
    (0x2002, 2, 2, "200"),
    (0x00C8, 0, 200, "200"),
    (0x04D2, 0, 1234, "1234"),
    (0x0B2E, 0, -1234, "-1234"),
]


@pytest.mark.parametrize(("word", "exponent", "mantissa", "text"), SFLOAT_TABLE)
def test_sfloat_hl7_table(word, exponent, mantissa, text):
    number = decode_sfloat(word)
    assert number == Number(mantissa, exponent)
    assert number.value == Decimal(text)
    assert str(number) == text
    assert encode_sfloat(number) == word


# Same table for FLOAT (HL7 PHD IG, FLOAT encoding table).
FLOAT_TABLE = [
    (0x00000002, 0, 2),
    (0xFF000014, -1, 20),
    (0xFE0000C8, -2, 200),
    (0x01000002, 1, 2),
    (0x02000002, 2, 2),
    (0x000000C8, 0, 200),
    (0x000004D2, 0, 1234),
    (0x00FFFB2E, 0, -1234),
]


@pytest.mark.parametrize(("word", "exponent", "mantissa"), FLOAT_TABLE)
def test_float_hl7_table(word, exponent, mantissa):
    assert decode_float(word) == Number(mantissa, exponent)
    assert encode_float(Number(mantissa, exponent)) == word


def test_sfloat_exponent_is_twos_complement_not_offset_binary():
    # 0xF4B0: exponent nibble 0xF is -1 (two's complement), mantissa 0x4B0 = 1200 -> 120.0 mmHg.
    # Read as offset binary (nibble - 8 = +7) it would be 1.2e10; the reference library gets this
    # wrong and reports 1.2e-06 for a plain 120 mmHg cuff value.
    number = decode_sfloat(0xF4B0)
    assert number.value == Decimal("120.0")
    assert number.resolution == Decimal("0.1")
    assert decode_sfloat(0x0078).value == Decimal(120)


def test_sfloat_extremes():
    assert decode_sfloat(0x07FD) == Number(2045, 0)
    assert decode_sfloat(0x0803) == Number(-2045, 0)
    assert decode_sfloat(0x77FF) == Number(2047, 7)  # 0x7FF with exponent 7 is a number
    assert decode_sfloat(0x8800) == Number(-2048, -8)
    assert decode_sfloat(0xF7FF) == Number(2047, -1)


SFLOAT_SPECIAL = [
    (0x07FF, SpecialValue.NAN),
    (0x0800, SpecialValue.NRES),
    (0x07FE, SpecialValue.POSITIVE_INFINITY),
    (0x0802, SpecialValue.NEGATIVE_INFINITY),
    (0x0801, SpecialValue.RESERVED),
]


@pytest.mark.parametrize(("word", "special"), SFLOAT_SPECIAL)
def test_sfloat_special_values_never_become_numbers(word, special):
    number = decode_sfloat(word)
    assert number.special is special
    assert not number.is_number
    assert number.value is None
    assert number.resolution is None
    assert str(number) == special.value
    assert encode_sfloat(number) == word


FLOAT_SPECIAL = [
    (0x007FFFFF, SpecialValue.NAN),
    (0x00800000, SpecialValue.NRES),
    (0x007FFFFE, SpecialValue.POSITIVE_INFINITY),
    (0x00800002, SpecialValue.NEGATIVE_INFINITY),
    (0x00800001, SpecialValue.RESERVED),
]


@pytest.mark.parametrize(("word", "special"), FLOAT_SPECIAL)
def test_float_special_values_never_become_numbers(word, special):
    number = decode_float(word)
    assert number.special is special
    assert number.value is None
    assert encode_float(number) == word


def test_nres_and_reserved_stay_recognisable_as_no_valid_value():
    for word in (0x0800, 0x0801):
        number = decode_sfloat(word)
        assert number.special in {SpecialValue.NRES, SpecialValue.RESERVED}
        assert not number.is_number


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (Number(2048, 0), "beyond"),
        (Number(-2049, 0), "beyond"),
        (Number(1, 8), "beyond"),
        (Number(1, -9), "beyond"),
        (Number(2047, 0), "collides"),
        (Number(-2046, 0), "collides"),
        (Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL), "no SFLOAT form"),
    ],
)
def test_sfloat_encode_refuses_what_does_not_fit(number, message):
    with pytest.raises(EncodeError, match=message) as info:
        encode_sfloat(number, "Test (0x0000)", "value")
    assert info.value.field == "value"


@pytest.mark.parametrize(
    "number",
    [
        Number(2**23, 0),
        Number(1, 128),
        Number(1, -129),
        Number(0x7FFFFF, 0),
        Number.special_value(SpecialValue.MEASUREMENT_UNSUCCESSFUL),
    ],
)
def test_float_encode_refuses_what_does_not_fit(number):
    with pytest.raises(EncodeError):
        encode_float(number)


@given(sfloat_numbers)
def test_sfloat_round_trip(number):
    assert decode_sfloat(encode_sfloat(number)) == number


@given(float_numbers)
def test_float_round_trip(number):
    assert decode_float(encode_float(number)) == number


@given(st.integers(0, 0xFFFF))
def test_every_sfloat_word_decodes_and_re_encodes_to_itself(word):
    assert encode_sfloat(decode_sfloat(word)) == word


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_word_decodes_and_re_encodes_to_itself(word):
    assert encode_float(decode_float(word)) == word


def test_decoded_sfloat_is_shared_not_rebuilt():
    assert decode_sfloat(0xF4B0) is decode_sfloat(0xF4B0)


def test_number_from_decimal_keeps_written_precision():
    assert Number.from_decimal("2.00") == Number(200, -2)
    assert Number.from_decimal("-36.5") == Number(-365, -1)
    assert Number.from_decimal(72) == Number(72, 0)
    assert Number.from_decimal("0") == Number(0, 0)
    with pytest.raises(ValueError, match="not a finite number"):
        Number.from_decimal("NaN")


def test_fixed_point_number_keeps_its_step():
    weight = Number.fixed(14000, Scale(5, -3))  # 14000 x 0.005 kg
    assert weight.value == Decimal("70.000")
    assert weight.resolution == Decimal("0.005")
    assert str(weight) == "70.000"
    assert weight.raw_units(Scale(5, -3), "Weight", "weight") == 14000


def test_raw_units_rescales_exactly_or_refuses():
    assert Number.of(70, 0).raw_units(Scale(5, -3), "W", "weight") == 14000
    assert Number.of(7005, -2).raw_units(Scale(1, -2), "W", "weight") == 7005
    assert Number.of(1, 0).raw_units(Scale(9765625, -10), "HR", "rr") == 1024
    with pytest.raises(EncodeError, match="whole multiple"):
        Number.of(70001, -3).raw_units(Scale(5, -3), "W", "weight")
    with pytest.raises(EncodeError, match="not a number"):
        Number.special_value(SpecialValue.NAN).raw_units(Scale(1, 0), "W", "weight")
