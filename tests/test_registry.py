"""The public entry points: UUID spellings, unknown characteristics, as_dict and the error types."""

from __future__ import annotations

import enum
import pickle
import uuid
from dataclasses import dataclass

import pytest

import device_profiles
from device_profiles import (
    CHARACTERISTICS,
    DecodeError,
    EncodeError,
    ErrorKind,
    UnknownCharacteristicError,
    as_dict,
    codec_for,
    parse_uuid,
)
from device_profiles._enums import CodeEnum
from device_profiles.blood_pressure import BloodPressureMeasurement

BP = bytes([0x00, 0x78, 0x00, 0x50, 0x00, 0x5A, 0x00])


@pytest.mark.parametrize(
    "spelling",
    [
        0x2A35,
        "2A35",
        "2a35",
        "0x2A35",
        "0X2a35",
        " 2A35 ",
        "00002a35-0000-1000-8000-00805f9b34fb",
        "00002A35-0000-1000-8000-00805F9B34FB",
        uuid.UUID("00002a35-0000-1000-8000-00805f9b34fb"),
    ],
)
def test_every_uuid_spelling_reaches_the_same_codec(spelling):
    assert parse_uuid(spelling) == 0x2A35
    assert isinstance(device_profiles.decode(spelling, BP), BloodPressureMeasurement)


@pytest.mark.parametrize(
    "spelling",
    [
        "zz35",
        "12345678-1234-5678-1234-567812345678",
        "not-a-uuid-at-all-but-long-enough",
        -1,
        2**32,
        3.5,
        True,
    ],
)
def test_bad_uuid_spellings_are_unknown_characteristic_errors(spelling):
    with pytest.raises(UnknownCharacteristicError) as info:
        device_profiles.decode(spelling, BP)
    assert info.value.kind is ErrorKind.UNKNOWN_CHARACTERISTIC


def test_unregistered_uuid_is_its_own_decode_error_subclass():
    with pytest.raises(UnknownCharacteristicError) as info:
        device_profiles.decode(0x2A00, b"x")
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)
    assert info.value.characteristic == "0x2A00"
    with pytest.raises(UnknownCharacteristicError, match="0x0001F00D"):
        codec_for(0x1F00D)


def test_registry_keys_match_class_uuids():
    for short, cls in CHARACTERISTICS.items():
        assert short == cls.UUID
        assert f"{cls.NAME} (0x{short:04X})" == cls.LABEL


def test_bytearray_and_memoryview_are_accepted():
    assert device_profiles.decode(0x2A35, bytearray(BP)) == device_profiles.decode(0x2A35, BP)
    assert BloodPressureMeasurement.decode(memoryview(BP)) == device_profiles.decode(0x2A35, BP)  # type: ignore[arg-type]


def test_encode_entry_point():
    result = device_profiles.decode(0x2A35, BP)
    assert device_profiles.encode(result) == BP


def test_errors_survive_pickling_with_their_attributes():
    with pytest.raises(DecodeError) as info:
        device_profiles.decode(0x2A35, BP[:2])
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert (copy.field, copy.offset, copy.kind) == ("systolic", 1, ErrorKind.TRUNCATED)
    assert str(copy) == str(info.value)
    unknown = pickle.loads(pickle.dumps(UnknownCharacteristicError("0x2A00")))  # noqa: S301
    assert unknown.characteristic == "0x2A00"
    encode = pickle.loads(pickle.dumps(EncodeError("C", "f", "why")))  # noqa: S301
    assert (encode.field, str(encode)) == ("f", "C: cannot encode field 'f': why")


class _Code(CodeEnum):
    KNOWN = 1


class _Word(enum.Enum):
    ONE = 1


@dataclass(frozen=True)
class _Everything:
    code: _Code
    reserved: _Code
    word: _Word
    raw: bytes
    items: tuple[int, ...]
    nested: _Code | None
    ratio: float


def test_as_dict_renders_every_kind_of_field():
    value = _Everything(_Code.KNOWN, _Code(9), _Word.ONE, b"\x01\xab", (1, 2), None, 0.5)
    assert as_dict(value) == {
        "code": "known",
        "reserved": "reserved_9",
        "word": "one",
        "raw": "01ab",
        "items": [1, 2],
        "nested": None,
        "ratio": 0.5,
    }


def test_reserved_codes_keep_their_value_and_say_so():
    assert _Code(9) == 9
    assert _Code(9).is_reserved
    assert not _Code.KNOWN.is_reserved
    with pytest.raises(ValueError, match="is not a valid"):
        _Code("x")


def test_as_dict_refuses_what_is_not_a_result():
    with pytest.raises(TypeError):
        as_dict(42)
    with pytest.raises(TypeError):
        as_dict(BloodPressureMeasurement)

    @dataclass
    class _Odd:
        thing: object

    with pytest.raises(TypeError, match="no JSON form"):
        as_dict(_Odd(object()))
