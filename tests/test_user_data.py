"""User Data Service codecs against hand-built payloads from the UDS and GSS field tables.

Tables followed: UDS 1.0 section 3.4 "User Control Point" (Op Code table: 0x01 Register New User
with Consent Code uint16 0x0000-0x270F, 0x02 Consent with User Index uint8 and Consent Code, 0x03
Delete User Data, 0x20 Response Code with Request Op Code, Response Value and Response Parameter;
Response Value table 0x01-0x05), the UDS 1.1 additions 0x04 List All Users (success parameter
Number of Users) and 0x05 Delete User(s) (User Index, 0xFF = all users); GSS "User Index" (0x2A9A,
0xFF = unknown user) and "Database Change Increment" (0x2A99, uint32).
"""

from __future__ import annotations

import pytest

import device_profiles
from device_profiles import DecodeError, EncodeError
from device_profiles.user_data import (
    ALL_USERS,
    UNKNOWN_USER,
    DatabaseChangeIncrement,
    UserControlPoint,
    UserControlPointOpCode,
    UserControlPointResponseValue,
    UserIndex,
)

Op = UserControlPointOpCode
Value = UserControlPointResponseValue
UCP = UserControlPoint


def _error(cls, data):
    with pytest.raises(DecodeError) as info:
        cls.decode(data)
    return info.value


# --- User Control Point (0x2A9F): requests, byte for byte ----------------------------------------

REQUESTS = [
    ("register_new_user_1234", UCP.register_new_user(1234), "01d204"),
    ("register_new_user_0", UCP.register_new_user(0), "010000"),
    ("register_new_user_9999", UCP.register_new_user(9999), "010f27"),
    ("consent_user_3", UCP.consent(3, 1234), "0203d204"),
    ("consent_user_0_code_9999", UCP.consent(0, 9999), "02000f27"),
    ("delete_user_data", UCP.delete_user_data(), "03"),
    ("list_all_users", UCP.list_all_users(), "04"),
    ("delete_user_2", UCP.delete_users(2), "0502"),
    ("delete_all_users", UCP.delete_users(), "05ff"),
]


@pytest.mark.parametrize(
    ("request_", "wire"), [(r, w) for _, r, w in REQUESTS], ids=[n for n, _, _ in REQUESTS]
)
def test_every_request_encodes_byte_for_byte(request_, wire):
    assert request_.encode() == bytes.fromhex(wire)
    assert device_profiles.decode("2A9F", bytes.fromhex(wire)) == request_


def test_request_fields():
    assert UCP.register_new_user(1234) == UCP(Op.REGISTER_NEW_USER, consent_code=1234)
    assert UCP.consent(3, 1234) == UCP(Op.CONSENT, user_index=3, consent_code=1234)
    assert UCP.delete_user_data() == UCP(Op.DELETE_USER_DATA)
    assert UCP.list_all_users() == UCP(Op.LIST_ALL_USERS)
    assert UCP.delete_users(2) == UCP(Op.DELETE_USERS, user_index=2)
    assert UCP.delete_users() == UCP(Op.DELETE_USERS, user_index=ALL_USERS)
    assert UCP.delete_users().deletes_all_users
    assert not UCP.delete_users(2).deletes_all_users
    assert not UCP.register_new_user(1).is_response
    assert not UCP.register_new_user(1).is_success


# --- User Control Point: responses ---------------------------------------------------------------


def test_register_new_user_success_carries_the_new_user_index():
    result = UCP.decode(bytes.fromhex("20010103"))
    assert result == UCP(
        Op.RESPONSE_CODE,
        user_index=3,
        request_op_code=Op.REGISTER_NEW_USER,
        response_value=Value.SUCCESS,
    )
    assert result == UCP.response(Op.REGISTER_NEW_USER, Value.SUCCESS, user_index=3)
    assert result.is_response
    assert result.is_success
    assert result.user_index == 3
    assert result.encode() == bytes.fromhex("20010103")


@pytest.mark.parametrize("request_op", [Op.CONSENT, Op.DELETE_USER_DATA])
def test_success_without_a_response_parameter(request_op):
    data = bytes([0x20, request_op, 0x01])
    result = UCP.decode(data)
    assert result == UCP.response(request_op, Value.SUCCESS)
    assert result.is_success
    assert result.user_index is None
    assert result.encode() == data


def test_list_all_users_success_carries_the_number_of_users():
    result = UCP.decode(bytes.fromhex("20040105"))
    assert result == UCP.response(Op.LIST_ALL_USERS, Value.SUCCESS, number_of_users=5)
    assert result.number_of_users == 5
    assert result.encode() == bytes.fromhex("20040105")


@pytest.mark.parametrize(("index", "all_users"), [(0x02, False), (0xFF, True)])
def test_delete_users_success_carries_the_user_index(index, all_users):
    data = bytes([0x20, 0x05, 0x01, index])
    result = UCP.decode(data)
    assert result == UCP.response(Op.DELETE_USERS, Value.SUCCESS, user_index=index)
    assert result.deletes_all_users is all_users
    assert result.encode() == data


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0x02, Value.OP_CODE_NOT_SUPPORTED),
        (0x03, Value.INVALID_PARAMETER),
        (0x04, Value.OPERATION_FAILED),
        (0x05, Value.USER_NOT_AUTHORIZED),
    ],
)
@pytest.mark.parametrize("request_op", [Op.REGISTER_NEW_USER, Op.CONSENT, Op.LIST_ALL_USERS])
def test_every_failure_response_value_has_no_parameter(code, value, request_op):
    data = bytes([0x20, request_op, code])
    result = UCP.decode(data)
    assert result == UCP.response(request_op, value)
    assert not result.is_success
    assert result.user_index is None
    assert result.encode() == data


def test_success_response_value_code():
    assert Value(0x01) is Value.SUCCESS


@pytest.mark.parametrize("code", [0x00, 0x06, 0xFF])
def test_reserved_response_value_keeps_its_parameter_raw(code):
    data = bytes([0x20, 0x01, code, 0xAB, 0xCD])
    result = UCP.decode(data)
    assert result == UCP.response(Op.REGISTER_NEW_USER, Value(code), parameter=b"\xab\xcd")
    assert result.response_value is not None
    assert result.response_value.is_reserved
    assert result.warnings == ()
    assert result.encode() == data


def test_success_to_a_reserved_op_code_keeps_its_parameter_raw():
    data = bytes([0x20, 0x07, 0x01, 0xAB, 0xCD])
    result = UCP.decode(data)
    assert result == UCP.response(Op(0x07), Value.SUCCESS, parameter=b"\xab\xcd")
    assert result.encode() == data


def test_op_code_not_supported_for_a_reserved_op_code():
    data = bytes([0x20, 0x07, 0x02])
    result = UCP.decode(data)
    assert result == UCP.response(Op(0x07), Value.OP_CODE_NOT_SUPPORTED)
    assert result.request_op_code is not None
    assert result.request_op_code.is_reserved


@pytest.mark.parametrize("code", [0x00, 0x06, 0x1F, 0x21, 0xFF])
def test_reserved_op_code_keeps_its_parameter_raw(code):
    data = bytes([code, 0x01, 0x02, 0x03])
    result = UCP.decode(data)
    assert result == UCP(Op(code), parameter=b"\x01\x02\x03")
    assert result.op_code.is_reserved
    assert result.op_code.name == f"RESERVED_{code}"
    assert result.warnings == ()
    assert result.encode() == data


# --- User Control Point: malformed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "kind", "field", "offset"),
    [
        ("", "empty", "op_code", 0),
        ("01", "missing_field", "consent_code", 1),
        ("01d2", "truncated", "consent_code", 1),
        ("02", "missing_field", "user_index", 1),
        ("0203", "missing_field", "consent_code", 2),
        ("020304", "truncated", "consent_code", 2),
        ("05", "missing_field", "user_index", 1),
        ("20", "missing_field", "request_op_code", 1),
        ("2001", "missing_field", "response_value", 2),
        ("200101", "missing_field", "user_index", 3),
        ("200501", "missing_field", "user_index", 3),
        ("200401", "missing_field", "number_of_users", 3),
    ],
)
def test_short_control_point(wire, kind, field, offset):
    error = _error(UCP, bytes.fromhex(wire))
    assert (error.kind, error.field, error.offset) == (kind, field, offset)


@pytest.mark.parametrize(
    ("wire", "offset"), [("011027", 1), ("01ffff", 1), ("0203ffff", 2), ("02031027", 2)]
)
def test_consent_code_above_9999_is_invalid(wire, offset):
    error = _error(UCP, bytes.fromhex(wire))
    assert (error.kind, error.field, error.offset) == ("invalid_value", "consent_code", offset)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("0300", UCP.delete_user_data()),
        ("04aa", UCP.list_all_users()),
        ("01d20400", UCP.register_new_user(1234)),
        ("05ff01", UCP.delete_users()),
        ("20010200", UCP.response(Op.REGISTER_NEW_USER, Value.OP_CODE_NOT_SUPPORTED)),
        ("2001010300", UCP.response(Op.REGISTER_NEW_USER, Value.SUCCESS, user_index=3)),
    ],
)
def test_trailing_bytes_are_a_warning(wire, expected):
    result = UCP.decode(bytes.fromhex(wire))
    assert result.warnings == ("1 trailing byte(s) after the last field ignored",)
    assert result == UCP(
        expected.op_code,
        expected.user_index,
        expected.consent_code,
        expected.request_op_code,
        expected.response_value,
        expected.number_of_users,
        expected.parameter,
        result.warnings,
    )


# --- User Control Point: values that cannot be encoded -------------------------------------------


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (UCP.register_new_user(10000), "consent_code"),
        (UCP.register_new_user(-1), "consent_code"),
        (UCP.consent(1, 10000), "consent_code"),
        (UCP.consent(256, 1), "user_index"),
        (UCP.delete_users(256), "user_index"),
        (UCP.response(Op.LIST_ALL_USERS, Value.SUCCESS, number_of_users=256), "number_of_users"),
        (UCP.response(Op(256), Value.OP_CODE_NOT_SUPPORTED), "request_op_code"),
        (UCP(Op(256)), "op_code"),
    ],
)
def test_out_of_range_is_an_encode_error(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "field", "detail"),
    [
        (UCP(Op.REGISTER_NEW_USER), "consent_code", "is required"),
        (UCP(Op.CONSENT, consent_code=1), "user_index", "is required"),
        (UCP(Op.DELETE_USER_DATA, user_index=1), "user_index", "must be None"),
        (UCP(Op.LIST_ALL_USERS, number_of_users=1), "number_of_users", "must be None"),
        (UCP(Op.DELETE_USERS), "user_index", "is required"),
        (UCP(Op.RESPONSE_CODE), "request_op_code", "is required"),
        (UCP(Op.RESPONSE_CODE, request_op_code=Op.CONSENT), "response_value", "is required"),
        (UCP.response(Op.REGISTER_NEW_USER, Value.SUCCESS), "user_index", "is required"),
        (UCP.response(Op.CONSENT, Value.SUCCESS, user_index=1), "user_index", "must be None"),
        (UCP.response(Op.LIST_ALL_USERS, Value.SUCCESS), "number_of_users", "is required"),
        (
            UCP.response(Op.REGISTER_NEW_USER, Value.INVALID_PARAMETER, user_index=1),
            "user_index",
            "must be None",
        ),
        (UCP(Op.CONSENT, 1, 1, response_value=Value.SUCCESS), "response_value", "must be None"),
        (UCP(Op.DELETE_USER_DATA, parameter=b"\x01"), "parameter", "not allowed"),
        (UCP.response(Op.CONSENT, Value.SUCCESS, parameter=b"\x01"), "parameter", "not allowed"),
    ],
)
def test_fields_that_do_not_fit_the_op_code_are_an_encode_error(value, field, detail):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field
    assert detail in str(info.value)


# --- User Index (0x2A9A) -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "unknown"), [(0x00, False), (0x07, False), (0xFF, True)])
def test_user_index(raw, unknown):
    result = device_profiles.decode("2A9A", bytes([raw]))
    assert result == UserIndex(raw)
    assert result.unknown_user is unknown
    assert result.encode() == bytes([raw])


def test_user_index_unknown_constant():
    assert UserIndex(UNKNOWN_USER).encode() == b"\xff"


def test_user_index_empty():
    error = _error(UserIndex, b"")
    assert (error.kind, error.field, error.offset) == ("empty", "user_index", 0)


def test_user_index_trailing_bytes_are_a_warning():
    assert UserIndex.decode(b"\x01\x00") == UserIndex(
        1, ("1 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize("value", [256, -1])
def test_user_index_out_of_range(value):
    with pytest.raises(EncodeError) as info:
        UserIndex(value).encode()
    assert info.value.field == "user_index"


# --- Database Change Increment (0x2A99) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "value"),
    [("00000000", 0), ("01000000", 1), ("78563412", 0x12345678), ("ffffffff", 0xFFFFFFFF)],
)
def test_database_change_increment(wire, value):
    result = device_profiles.decode("2A99", bytes.fromhex(wire))
    assert result == DatabaseChangeIncrement(value)
    assert result.encode() == bytes.fromhex(wire)


@pytest.mark.parametrize(
    ("wire", "kind", "offset"),
    [("", "empty", 0), ("01", "truncated", 0), ("010203", "truncated", 0)],
)
def test_database_change_increment_short(wire, kind, offset):
    error = _error(DatabaseChangeIncrement, bytes.fromhex(wire))
    assert (error.kind, error.field, error.offset) == (kind, "database_change_increment", offset)


def test_database_change_increment_trailing_bytes_are_a_warning():
    assert DatabaseChangeIncrement.decode(bytes.fromhex("0100000000")) == DatabaseChangeIncrement(
        1, ("1 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize("value", [2**32, -1])
def test_database_change_increment_out_of_range(value):
    with pytest.raises(EncodeError) as info:
        DatabaseChangeIncrement(value).encode()
    assert info.value.field == "database_change_increment"
