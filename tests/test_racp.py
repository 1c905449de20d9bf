"""Record Access Control Point (0x2A52) as the Glucose Service uses it.

Vectors hand-built from the GSS RACP field table (Op Code uint8, Operator uint8, Operand) and the
Op Code, Operator and Response Code Value tables of record_access_control_point.xml; Glucose
Service operands: Filter Type 0x01 (Sequence Number, uint16) or 0x02 (User Facing Time, Date
Time), Number of Stored Records uint16, Request Op Code + Response Code Value.
"""

from __future__ import annotations

import json

import pytest

import device_profiles
from device_profiles import DateTime, DecodeError, EncodeError
from device_profiles.racp import (
    FilterType,
    NumberOfStoredRecords,
    OpCode,
    Operator,
    RawOperand,
    RecordAccessControlPoint,
    ResponseCode,
    ResponseCodeOperand,
    SequenceNumber,
    SequenceNumberRange,
    UserFacingTime,
    UserFacingTimeRange,
)

RACP = RecordAccessControlPoint
MORNING = DateTime(2024, 3, 15, 8, 30, 0)
MORNING_BYTES = "e807030f081e00"  # 2024 = 0x07E8 little-endian, 3, 15, 8, 30, 0
MIDNIGHT = DateTime(2024, 3, 16, 0, 0, 0)
MIDNIGHT_BYTES = "e8070310000000"

# Every request the gateway sends, built with the constructors, and its bytes.
REQUESTS = [
    ("report all", RACP.report_all_records(), "0101"),
    ("report first", RACP.report_first_record(), "0105"),
    ("report last", RACP.report_last_record(), "0106"),
    ("report >= 261", RACP.report_records_from(0x0105), "0103010501"),
    ("report <= 16", RACP.report_records_up_to(0x0010), "0102011000"),
    ("report 5..10", RACP.report_records_in_range(5, 10), "01040105000a00"),
    (
        "report >= time",
        RACP.report_stored_records(Operator.GREATER_THAN_OR_EQUAL_TO, UserFacingTime(MORNING)),
        "010302" + MORNING_BYTES,
    ),
    (
        "report <= time",
        RACP.report_stored_records(Operator.LESS_THAN_OR_EQUAL_TO, UserFacingTime(MORNING)),
        "010202" + MORNING_BYTES,
    ),
    (
        "report time range",
        RACP.report_stored_records(
            Operator.WITHIN_RANGE_OF, UserFacingTimeRange(MORNING, MIDNIGHT)
        ),
        "010402" + MORNING_BYTES + MIDNIGHT_BYTES,
    ),
    ("count all", RACP.report_number_of_stored_records(), "0401"),
    (
        "count >= 42",
        RACP.report_number_of_stored_records(Operator.GREATER_THAN_OR_EQUAL_TO, SequenceNumber(42)),
        "0403012a00",
    ),
    (
        "count range",
        RACP.report_number_of_stored_records(
            Operator.WITHIN_RANGE_OF, SequenceNumberRange(1, 0xFFFF)
        ),
        "0404010100ffff",
    ),
    ("delete all", RACP.delete_stored_records(), "0201"),
    (
        "delete <= 99",
        RACP.delete_stored_records(Operator.LESS_THAN_OR_EQUAL_TO, SequenceNumber(99)),
        "0202016300",
    ),
    ("delete first", RACP.delete_stored_records(Operator.FIRST_RECORD), "0205"),
    ("abort", RACP.abort_operation(), "0300"),
]


@pytest.mark.parametrize(
    ("request_", "wire"), [(r, w) for _, r, w in REQUESTS], ids=[n for n, _, _ in REQUESTS]
)
def test_every_request_encodes_byte_for_byte(request_, wire):
    assert request_.encode() == bytes.fromhex(wire)
    assert RACP.decode(bytes.fromhex(wire)) == request_
    assert not request_.is_response
    assert request_.number_of_records is None
    assert request_.response_code_value is None
    assert request_.request_op_code is None
    assert not request_.is_success


def test_request_constructors_build_the_expected_fields():
    assert RACP.report_records_from(7) == RACP(
        OpCode.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL_TO, SequenceNumber(7)
    )
    assert RACP.report_records_in_range(1, 2) == RACP(
        OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF, SequenceNumberRange(1, 2)
    )
    assert RACP.abort_operation() == RACP(OpCode.ABORT_OPERATION, Operator.NULL, None)
    assert RACP.report_stored_records() == RACP.report_all_records()


def test_number_of_stored_records_response():
    # Op code 5, operator Null, operand uint16 0x012C = 300.
    result = RACP.decode(bytes.fromhex("05002c01"))
    assert result == RACP(
        OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, Operator.NULL, NumberOfStoredRecords(300)
    )
    assert result.is_response
    assert result.number_of_records == 300
    assert result.response_code_value is None
    assert not result.is_success
    assert result == RACP.number_of_stored_records_response(300)
    assert result.encode() == bytes.fromhex("05002c01")


def test_number_of_stored_records_response_of_zero():
    assert RACP.decode(b"\x05\x00\x00\x00").number_of_records == 0


def test_success_response():
    # Op code 6, operator Null, request op code 1 (report stored records), value 1 (success).
    result = RACP.decode(bytes.fromhex("06000101"))
    assert result == RACP(
        OpCode.RESPONSE_CODE,
        Operator.NULL,
        ResponseCodeOperand(OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS),
    )
    assert result.is_response
    assert result.is_success
    assert not result.no_records_found
    assert result.request_op_code is OpCode.REPORT_STORED_RECORDS
    assert result.response_code_value is ResponseCode.SUCCESS
    assert result.number_of_records is None
    assert result == RACP.response(OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS)


def test_no_records_found_response():
    result = RACP.decode(bytes.fromhex("06000206"))
    assert result.request_op_code is OpCode.DELETE_STORED_RECORDS
    assert result.no_records_found
    assert not result.is_success


RESPONSE_CODES = [
    (0x01, "SUCCESS"),
    (0x02, "OP_CODE_NOT_SUPPORTED"),
    (0x03, "INVALID_OPERATOR"),
    (0x04, "OPERATOR_NOT_SUPPORTED"),
    (0x05, "INVALID_OPERAND"),
    (0x06, "NO_RECORDS_FOUND"),
    (0x07, "ABORT_UNSUCCESSFUL"),
    (0x08, "PROCEDURE_NOT_COMPLETED"),
    (0x09, "OPERAND_NOT_SUPPORTED"),
    (0x00, "RESERVED_0"),
    (0x0A, "RESERVED_10"),
    (0xFF, "RESERVED_255"),
]


@pytest.mark.parametrize(("value", "name"), RESPONSE_CODES)
def test_every_response_code_value(value, name):
    # XML "Response Code Values" table; reserved values are kept as sent, without a warning.
    payload = bytes([0x06, 0x00, 0x03, value])
    result = RACP.decode(payload)
    assert result.request_op_code is OpCode.ABORT_OPERATION
    assert result.response_code_value == value
    assert result.response_code_value.name == name
    assert result.response_code_value.is_reserved == name.startswith("RESERVED")
    assert result.is_success == (value == 0x01)
    assert result.warnings == ()
    assert result.encode() == payload


def test_response_to_a_reserved_request_op_code():
    # A server answers an unknown op code with "Op Code not supported", echoing the code.
    result = RACP.decode(bytes.fromhex("06000902"))
    assert result.request_op_code == 9
    assert result.request_op_code.is_reserved
    assert result.response_code_value is ResponseCode.OP_CODE_NOT_SUPPORTED
    assert result.encode() == bytes.fromhex("06000902")


def test_code_tables():
    # XML Op Code and Operator tables, GLS Filter Type table.
    assert {c.name: c.value for c in OpCode} == {
        "REPORT_STORED_RECORDS": 1,
        "DELETE_STORED_RECORDS": 2,
        "ABORT_OPERATION": 3,
        "REPORT_NUMBER_OF_STORED_RECORDS": 4,
        "NUMBER_OF_STORED_RECORDS_RESPONSE": 5,
        "RESPONSE_CODE": 6,
    }
    assert {o.name: o.value for o in Operator} == {
        "NULL": 0,
        "ALL_RECORDS": 1,
        "LESS_THAN_OR_EQUAL_TO": 2,
        "GREATER_THAN_OR_EQUAL_TO": 3,
        "WITHIN_RANGE_OF": 4,
        "FIRST_RECORD": 5,
        "LAST_RECORD": 6,
    }
    assert {f.name: f.value for f in FilterType} == {"SEQUENCE_NUMBER": 1, "USER_FACING_TIME": 2}


# Lenient decoding: what the spec does not define is kept and noted, never an exception.
@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            "0101ff",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.ALL_RECORDS,
                warnings=("1 trailing byte(s) after the last field ignored",),
            ),
        ),
        (
            "0300",
            RACP(OpCode.ABORT_OPERATION, Operator.NULL),
        ),
        (
            "0301",
            RACP(
                OpCode.ABORT_OPERATION,
                Operator.ALL_RECORDS,
                warnings=("operator: ABORT_OPERATION takes Null, got 1",),
            ),
        ),
        (
            "0501ff00",
            RACP(
                OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
                Operator.ALL_RECORDS,
                NumberOfStoredRecords(255),
                ("operator: NUMBER_OF_STORED_RECORDS_RESPONSE takes Null, got 1",),
            ),
        ),
        (
            # A uint32 count from another service: the Glucose uint16 is read, the rest noted.
            "050001000000",
            RACP(
                OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
                Operator.NULL,
                NumberOfStoredRecords(1),
                ("2 trailing byte(s) after the last field ignored",),
            ),
        ),
        (
            "06060101",
            RACP(
                OpCode.RESPONSE_CODE,
                Operator.LAST_RECORD,
                ResponseCodeOperand(OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS),
                ("operator: RESPONSE_CODE takes Null, got 6",),
            ),
        ),
        (
            "0100",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.NULL,
                warnings=("operator: Null is invalid for REPORT_STORED_RECORDS",),
            ),
        ),
        (
            "0107aabb",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator(7),
                RawOperand(b"\xaa\xbb"),
                ("operator: 7 is reserved; operand kept raw",),
            ),
        ),
        (
            "04ff",
            RACP(
                OpCode.REPORT_NUMBER_OF_STORED_RECORDS,
                Operator(0xFF),
                RawOperand(b""),
                ("operator: 255 is reserved; operand kept raw",),
            ),
        ),
        (
            "020303010203",
            RACP(
                OpCode.DELETE_STORED_RECORDS,
                Operator.GREATER_THAN_OR_EQUAL_TO,
                RawOperand(b"\x03\x01\x02\x03"),
                ("operand: filter type 3 is reserved; operand kept raw",),
            ),
        ),
        (
            "010400",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.WITHIN_RANGE_OF,
                RawOperand(b"\x00"),
                ("operand: filter type 0 is reserved; operand kept raw",),
            ),
        ),
        (
            "0003aa",
            RACP(
                OpCode(0),
                Operator.GREATER_THAN_OR_EQUAL_TO,
                RawOperand(b"\xaa"),
                ("op_code: 0 is reserved; operand kept raw",),
            ),
        ),
        (
            "0700",
            RACP(
                OpCode(7),
                Operator.NULL,
                RawOperand(b""),
                ("op_code: 7 is reserved; operand kept raw",),
            ),
        ),
        (
            # Range 10..5 selects nothing: a server answers Invalid Operand.
            "0104010a000500",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.WITHIN_RANGE_OF,
                SequenceNumberRange(10, 5),
                ("operand: range 10..5 is empty (min > max)",),
            ),
        ),
        (
            "010402" + MIDNIGHT_BYTES + MORNING_BYTES,
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.WITHIN_RANGE_OF,
                UserFacingTimeRange(MIDNIGHT, MORNING),
                ("operand: user facing time range is empty (min > max)",),
            ),
        ),
        (
            "010501",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.FIRST_RECORD,
                warnings=("1 trailing byte(s) after the last field ignored",),
            ),
        ),
        (
            "010201010000",
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.LESS_THAN_OR_EQUAL_TO,
                SequenceNumber(1),
                ("1 trailing byte(s) after the last field ignored",),
            ),
        ),
    ],
)
def test_lenient_decoding(wire, expected):
    assert RACP.decode(bytes.fromhex(wire)) == expected


def test_equal_range_bounds_are_valid():
    result = RACP.decode(bytes.fromhex("01040105000500"))
    assert result == RACP.report_records_in_range(5, 5)
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("wire", "field", "offset", "kind"),
    [
        ("", "op_code", 0, "empty"),
        ("01", "operator", 1, "missing_field"),
        ("0103", "operand.filter_type", 2, "missing_field"),
        ("010301", "operand.sequence_number", 3, "missing_field"),
        ("01030105", "operand.sequence_number", 3, "truncated"),
        ("010401", "operand.minimum", 3, "missing_field"),
        ("0104010500", "operand.maximum", 5, "missing_field"),
        ("010401050009", "operand.maximum", 5, "truncated"),
        ("010302e807", "operand.user_facing_time", 3, "truncated"),
        ("010402" + MORNING_BYTES, "operand.maximum", 10, "missing_field"),
        # Impossible dates reject the request.
        ("010302e8070d0f081e00", "operand.user_facing_time", 3, "invalid_value"),
        ("010402e807021e081e00" + MORNING_BYTES, "operand.minimum", 3, "invalid_value"),
        ("010402" + MORNING_BYTES + "e807031f180000", "operand.maximum", 10, "invalid_value"),
        ("0500", "operand.number_of_records", 2, "missing_field"),
        ("050001", "operand.number_of_records", 2, "truncated"),
        ("0600", "operand.request_op_code", 2, "missing_field"),
        ("060001", "operand.response_code_value", 3, "missing_field"),
    ],
)
def test_decode_errors(wire, field, offset, kind):
    with pytest.raises(DecodeError) as info:
        RACP.decode(bytes.fromhex(wire))
    assert (info.value.field, info.value.offset, info.value.kind) == (field, offset, kind)


# Strict encoding: only forms the spec defines go on the wire.
@pytest.mark.parametrize(
    ("value", "field"),
    [
        (RACP(OpCode(0x100), Operator.ALL_RECORDS), "op_code"),
        (RACP(OpCode(0), Operator.NULL), "op_code"),
        (RACP(OpCode(7), Operator.NULL, RawOperand(b"")), "op_code"),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator(0x100)), "operator"),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator.NULL), "operator"),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator(7), RawOperand(b"")), "operator"),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS, SequenceNumber(1)), "operand"),
        (RACP(OpCode.DELETE_STORED_RECORDS, Operator.LAST_RECORD, RawOperand(b"")), "operand"),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator.LESS_THAN_OR_EQUAL_TO), "operand"),
        (
            RACP(
                OpCode.REPORT_STORED_RECORDS,
                Operator.GREATER_THAN_OR_EQUAL_TO,
                SequenceNumberRange(1, 2),
            ),
            "operand",
        ),
        (
            RACP(OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF, SequenceNumber(1)),
            "operand",
        ),
        (RACP(OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE_OF), "operand"),
        (RACP.report_records_in_range(10, 5), "operand"),
        (
            RACP.report_stored_records(
                Operator.WITHIN_RANGE_OF, UserFacingTimeRange(MIDNIGHT, MORNING)
            ),
            "operand",
        ),
        (RACP.report_records_from(0x10000), "operand.sequence_number"),
        (RACP.report_records_up_to(-1), "operand.sequence_number"),
        (RACP.report_records_in_range(0, 0x10000), "operand.maximum"),
        (RACP.report_records_in_range(-1, 0), "operand.minimum"),
        (
            RACP.report_stored_records(
                Operator.GREATER_THAN_OR_EQUAL_TO, UserFacingTime(DateTime(2023, 2, 29))
            ),
            "operand.user_facing_time",
        ),
        (
            RACP.report_stored_records(
                Operator.WITHIN_RANGE_OF,
                UserFacingTimeRange(DateTime(2024, 1, 1, 24, 0, 0), DateTime(2024, 1, 2)),
            ),
            "operand.minimum",
        ),
        (RACP(OpCode.ABORT_OPERATION, Operator.ALL_RECORDS), "operator"),
        (RACP(OpCode.ABORT_OPERATION, Operator.NULL, SequenceNumber(1)), "operand"),
        (RACP(OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, Operator.NULL), "operand"),
        (
            RACP(
                OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
                Operator.ALL_RECORDS,
                NumberOfStoredRecords(1),
            ),
            "operator",
        ),
        (RACP.number_of_stored_records_response(0x10000), "operand.number_of_records"),
        (RACP(OpCode.RESPONSE_CODE, Operator.NULL, NumberOfStoredRecords(1)), "operand"),
        (
            RACP(
                OpCode.RESPONSE_CODE,
                Operator.LAST_RECORD,
                ResponseCodeOperand(OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS),
            ),
            "operator",
        ),
        (RACP.response(OpCode(0x100), ResponseCode.SUCCESS), "operand.request_op_code"),
        (
            RACP.response(OpCode.REPORT_STORED_RECORDS, ResponseCode(0x100)),
            "operand.response_code_value",
        ),
    ],
)
def test_encode_errors(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field


def test_registry_and_json():
    assert device_profiles.codec_for(0x2A52) is RecordAccessControlPoint
    result = device_profiles.decode("2A52", bytes.fromhex("06000406"))
    assert device_profiles.as_dict(result) == {
        "op_code": "response_code",
        "operator": "null",
        "operand": {
            "request_op_code": "report_number_of_stored_records",
            "response_code_value": "no_records_found",
        },
        "warnings": [],
    }
    raw = device_profiles.as_dict(RACP.decode(bytes.fromhex("0107aabb")))
    assert raw["operand"] == {"data": "aabb"}
    json.dumps(raw)
    timed = RACP.decode(bytes.fromhex("010302" + MORNING_BYTES))
    assert device_profiles.as_dict(timed)["operand"]["user_facing_time"]["iso"] == (
        "2024-03-15T08:30:00"
    )
