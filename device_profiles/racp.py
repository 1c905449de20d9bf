"""Record Access Control Point (0x2A52) as the Glucose Service uses it: requests and responses.

Field tables: GSS section Record Access Control Point (Op Code uint8, Operator uint8, Operand
variable) and the Op Code, Operator, Operand and Response Code Value tables of the Bluetooth SIG
GATT XML definition (record_access_control_point.xml). Glucose Service 1.0 defines the operands:
a Filter Type byte (0x01 Sequence Number: uint16 values; 0x02 User Facing Time: Date Time values)
before one value (<=, >=) or two (within range), a uint16 Number of Stored Records, and a Request
Op Code with a Response Code Value.

Requests and responses share the characteristic, so one class holds both. Decoding is lenient and
encoding strict:

- A field that the op code and operator require but the payload lacks is a DecodeError
  (missing_field or truncated); an impossible Date Time is invalid_value.
- Bytes beyond what the op code and operator define are a trailing-bytes warning.
- A reserved op code, a reserved operator of a request, or a reserved filter type leaves the
  layout unknown: the operand is kept as `RawOperand` with a warning.
- An operator the op code does not allow (Null for a request, anything but Null for abort and
  responses) or a range whose minimum is above its maximum is a warning; the server answers such
  a request with Invalid Operator or Invalid Operand.
- `encode` writes only what the specification allows and raises EncodeError for the rest, so a
  decoded value that carries warnings may not encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self, TypeAlias

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._wire import Reader, Writer
from device_profiles.date_time import DateTime, read_date_time, write_date_time

__all__ = [
    "FilterOperand",
    "FilterType",
    "NumberOfStoredRecords",
    "OpCode",
    "Operand",
    "Operator",
    "RawOperand",
    "RecordAccessControlPoint",
    "ResponseCode",
    "ResponseCodeOperand",
    "SequenceNumber",
    "SequenceNumberRange",
    "UserFacingTime",
    "UserFacingTimeRange",
]


class OpCode(CodeEnum):
    """RACP Op Code; 0 and 7-255 reserved."""

    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6


class Operator(CodeEnum):
    """RACP Operator; 7-255 reserved."""

    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL_TO = 2
    GREATER_THAN_OR_EQUAL_TO = 3
    WITHIN_RANGE_OF = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class FilterType(CodeEnum):
    """Filter Type, the first operand byte of a filtered Glucose request; 0 and 3-255 reserved."""

    SEQUENCE_NUMBER = 1
    USER_FACING_TIME = 2


class ResponseCode(CodeEnum):
    """RACP Response Code Value; 0 and 10-255 reserved."""

    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


@dataclass(frozen=True, slots=True)
class SequenceNumber:
    """Filter operand: one sequence number (filter type 0x01), for <= and >=."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class SequenceNumberRange:
    """Filter operand: an inclusive range of sequence numbers (filter type 0x01)."""

    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class UserFacingTime:
    """Filter operand: one user facing time (filter type 0x02), for <= and >=."""

    user_facing_time: DateTime


@dataclass(frozen=True, slots=True)
class UserFacingTimeRange:
    """Filter operand: an inclusive range of user facing times (filter type 0x02)."""

    minimum: DateTime
    maximum: DateTime


@dataclass(frozen=True, slots=True)
class NumberOfStoredRecords:
    """Operand of op code 5: how many records match the request (uint16 for Glucose)."""

    number_of_records: int


@dataclass(frozen=True, slots=True)
class ResponseCodeOperand:
    """Operand of op code 6: which request the server answers, and how it went."""

    request_op_code: OpCode
    response_code_value: ResponseCode


@dataclass(frozen=True, slots=True)
class RawOperand:
    """Operand bytes whose layout is unknown (reserved op code, operator or filter type)."""

    data: bytes


_SingleFilter: TypeAlias = SequenceNumber | UserFacingTime
_RangeFilter: TypeAlias = SequenceNumberRange | UserFacingTimeRange
FilterOperand: TypeAlias = _SingleFilter | _RangeFilter
"""An operand of Report, Delete or Report Number of Stored Records."""
Operand: TypeAlias = FilterOperand | NumberOfStoredRecords | ResponseCodeOperand | RawOperand
"""Any operand the control point carries."""

_FILTERED_OP_CODES: Final = frozenset(
    (
        OpCode.REPORT_STORED_RECORDS,
        OpCode.DELETE_STORED_RECORDS,
        OpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    )
)
_PLAIN_OPERATORS: Final = frozenset(
    (Operator.ALL_RECORDS, Operator.FIRST_RECORD, Operator.LAST_RECORD)
)
_SINGLE_OPERATORS: Final = frozenset(
    (Operator.LESS_THAN_OR_EQUAL_TO, Operator.GREATER_THAN_OR_EQUAL_TO)
)
_OP_CODES: Final = tuple(OpCode(code) for code in range(256))
_OPERATORS: Final = tuple(Operator(code) for code in range(256))
_RESPONSE_CODES: Final = tuple(ResponseCode(code) for code in range(256))


@dataclass(frozen=True, slots=True)
class RecordAccessControlPoint:
    """Record Access Control Point (0x2A52): one request to, or response from, the record store.

    Build requests with the classmethods (`report_all_records`, `report_records_from`,
    `abort_operation`, ...); read responses with `is_success`, `no_records_found`,
    `number_of_records` and `response_code_value`.
    """

    UUID: ClassVar[int] = 0x2A52
    NAME: ClassVar[str] = "Record Access Control Point"
    LABEL: ClassVar[str] = "Record Access Control Point (0x2A52)"

    op_code: OpCode
    operator: Operator = Operator.NULL
    operand: Operand | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def report_stored_records(
        cls, operator: Operator = Operator.ALL_RECORDS, operand: FilterOperand | None = None
    ) -> Self:
        """Request the records the operator selects, sent as Glucose Measurement notifications."""
        return cls(OpCode.REPORT_STORED_RECORDS, operator, operand)

    @classmethod
    def delete_stored_records(
        cls, operator: Operator = Operator.ALL_RECORDS, operand: FilterOperand | None = None
    ) -> Self:
        """Request deletion of the records the operator selects."""
        return cls(OpCode.DELETE_STORED_RECORDS, operator, operand)

    @classmethod
    def report_number_of_stored_records(
        cls, operator: Operator = Operator.ALL_RECORDS, operand: FilterOperand | None = None
    ) -> Self:
        """Request the number of records the operator selects."""
        return cls(OpCode.REPORT_NUMBER_OF_STORED_RECORDS, operator, operand)

    @classmethod
    def abort_operation(cls) -> Self:
        """Request that the procedure in progress stop."""
        return cls(OpCode.ABORT_OPERATION, Operator.NULL)

    @classmethod
    def report_all_records(cls) -> Self:
        """Request every stored record."""
        return cls(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS)

    @classmethod
    def report_first_record(cls) -> Self:
        """Request the oldest stored record."""
        return cls(OpCode.REPORT_STORED_RECORDS, Operator.FIRST_RECORD)

    @classmethod
    def report_last_record(cls) -> Self:
        """Request the most recent stored record."""
        return cls(OpCode.REPORT_STORED_RECORDS, Operator.LAST_RECORD)

    @classmethod
    def report_records_from(cls, sequence_number: int) -> Self:
        """Request the records with a sequence number >= `sequence_number`."""
        return cls(
            OpCode.REPORT_STORED_RECORDS,
            Operator.GREATER_THAN_OR_EQUAL_TO,
            SequenceNumber(sequence_number),
        )

    @classmethod
    def report_records_up_to(cls, sequence_number: int) -> Self:
        """Request the records with a sequence number <= `sequence_number`."""
        return cls(
            OpCode.REPORT_STORED_RECORDS,
            Operator.LESS_THAN_OR_EQUAL_TO,
            SequenceNumber(sequence_number),
        )

    @classmethod
    def report_records_in_range(cls, minimum: int, maximum: int) -> Self:
        """Request the records with a sequence number in minimum..maximum (inclusive)."""
        return cls(
            OpCode.REPORT_STORED_RECORDS,
            Operator.WITHIN_RANGE_OF,
            SequenceNumberRange(minimum, maximum),
        )

    @classmethod
    def number_of_stored_records_response(cls, number_of_records: int) -> Self:
        """Build the server's answer to a Report Number of Stored Records request."""
        return cls(
            OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
            Operator.NULL,
            NumberOfStoredRecords(number_of_records),
        )

    @classmethod
    def response(cls, request_op_code: OpCode, response_code_value: ResponseCode) -> Self:
        """Build the server's Response Code answer to a request."""
        return cls(
            OpCode.RESPONSE_CODE,
            Operator.NULL,
            ResponseCodeOperand(request_op_code, response_code_value),
        )

    @property
    def is_response(self) -> bool:
        """Whether this is a server response (op code 5 or 6) rather than a request."""
        return self.op_code in (OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, OpCode.RESPONSE_CODE)

    @property
    def response_code_value(self) -> ResponseCode | None:
        """The Response Code Value of a Response Code (op code 6), else None."""
        operand = self.operand
        return operand.response_code_value if isinstance(operand, ResponseCodeOperand) else None

    @property
    def request_op_code(self) -> OpCode | None:
        """The request a Response Code (op code 6) answers, else None."""
        operand = self.operand
        return operand.request_op_code if isinstance(operand, ResponseCodeOperand) else None

    @property
    def is_success(self) -> bool:
        """Whether this is a Response Code reporting Success."""
        return self.response_code_value is ResponseCode.SUCCESS

    @property
    def no_records_found(self) -> bool:
        """Whether this is a Response Code reporting No Records Found (a normal outcome)."""
        return self.response_code_value is ResponseCode.NO_RECORDS_FOUND

    @property
    def number_of_records(self) -> int | None:
        """The count of a Number of Stored Records Response (op code 5), else None."""
        operand = self.operand
        return operand.number_of_records if isinstance(operand, NumberOfStoredRecords) else None

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Record Access Control Point value (request or response; see module doc)."""
        reader = Reader(data, cls.LABEL)
        op_code = _OP_CODES[reader.u8("op_code")]
        operator = _OPERATORS[reader.u8("operator")]
        operand: Operand | None = None
        if op_code in _FILTERED_OP_CODES:
            if operator in _SINGLE_OPERATORS:
                operand = _read_filter(reader, single=True)
            elif operator is Operator.WITHIN_RANGE_OF:
                operand = _read_filter(reader, single=False)
            elif operator.is_reserved:
                reader.warnings.append(f"operator: {operator} is reserved; operand kept raw")
                operand = RawOperand(reader.rest())
            elif operator is Operator.NULL:
                reader.warnings.append(f"operator: Null is invalid for {op_code.name}")
        elif op_code is OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            _expect_null(reader, op_code, operator)
            operand = NumberOfStoredRecords(reader.u16("operand.number_of_records"))
        elif op_code is OpCode.RESPONSE_CODE:
            _expect_null(reader, op_code, operator)
            request_op_code = _OP_CODES[reader.u8("operand.request_op_code")]
            value = _RESPONSE_CODES[reader.u8("operand.response_code_value")]
            operand = ResponseCodeOperand(request_op_code, value)
        elif op_code is OpCode.ABORT_OPERATION:
            _expect_null(reader, op_code, operator)
        else:
            reader.warnings.append(f"op_code: {op_code} is reserved; operand kept raw")
            operand = RawOperand(reader.rest())
        return cls(op_code, operator, operand, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Record Access Control Point value; a form the spec forbids raises."""
        writer = Writer(self.LABEL)
        op_code, operator, operand = self.op_code, self.operator, self.operand
        writer.u8(op_code, "op_code")
        writer.u8(operator, "operator")
        if op_code in _FILTERED_OP_CODES:
            if operator in _PLAIN_OPERATORS:
                _expect_no_operand(writer, operator, operand)
            elif operator in _SINGLE_OPERATORS:
                if not isinstance(operand, SequenceNumber | UserFacingTime):
                    raise _wrong_operand(writer, operator, "SequenceNumber or UserFacingTime")
                _write_single(writer, operand)
            elif operator is Operator.WITHIN_RANGE_OF:
                if not isinstance(operand, SequenceNumberRange | UserFacingTimeRange):
                    raise _wrong_operand(
                        writer, operator, "SequenceNumberRange or UserFacingTimeRange"
                    )
                _write_range(writer, operand)
            else:
                raise EncodeError(
                    self.LABEL, "operator", f"{operator.name} is not an operator of {op_code.name}"
                )
        elif op_code is OpCode.ABORT_OPERATION:
            _encode_null(writer, op_code, operator)
            _expect_no_operand(writer, op_code, operand)
        elif op_code is OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            _encode_null(writer, op_code, operator)
            if not isinstance(operand, NumberOfStoredRecords):
                raise _wrong_operand(writer, op_code, "NumberOfStoredRecords")
            writer.u16(operand.number_of_records, "operand.number_of_records")
        elif op_code is OpCode.RESPONSE_CODE:
            _encode_null(writer, op_code, operator)
            if not isinstance(operand, ResponseCodeOperand):
                raise _wrong_operand(writer, op_code, "ResponseCodeOperand")
            writer.u8(operand.request_op_code, "operand.request_op_code")
            writer.u8(operand.response_code_value, "operand.response_code_value")
        else:
            raise EncodeError(self.LABEL, "op_code", f"{op_code} is reserved")
        return writer.bytes()


def _read_filter(reader: Reader, *, single: bool) -> Operand:
    filter_type = reader.u8("operand.filter_type")
    if filter_type == FilterType.SEQUENCE_NUMBER:
        if single:
            return SequenceNumber(reader.u16("operand.sequence_number"))
        minimum = reader.u16("operand.minimum")
        maximum = reader.u16("operand.maximum")
        if minimum > maximum:
            reader.warnings.append(f"operand: range {minimum}..{maximum} is empty (min > max)")
        return SequenceNumberRange(minimum, maximum)
    if filter_type == FilterType.USER_FACING_TIME:
        if single:
            return UserFacingTime(read_date_time(reader, "operand.user_facing_time"))
        first = read_date_time(reader, "operand.minimum")
        last = read_date_time(reader, "operand.maximum")
        if _time_key(first) > _time_key(last):
            reader.warnings.append("operand: user facing time range is empty (min > max)")
        return UserFacingTimeRange(first, last)
    reader.warnings.append(f"operand: filter type {filter_type} is reserved; operand kept raw")
    # The filter type byte stays in the raw operand, so that encoding it would be exact.
    return RawOperand(bytes((filter_type,)) + reader.rest())


def _time_key(value: DateTime) -> tuple[int, int, int, int, int, int]:
    return (value.year, value.month, value.day, value.hours, value.minutes, value.seconds)


def _expect_null(reader: Reader, op_code: OpCode, operator: Operator) -> None:
    if operator is not Operator.NULL:
        reader.warnings.append(f"operator: {op_code.name} takes Null, got {operator}")


def _encode_null(writer: Writer, op_code: OpCode, operator: Operator) -> None:
    if operator is not Operator.NULL:
        raise EncodeError(writer.characteristic, "operator", f"{op_code.name} takes Null")


def _expect_no_operand(writer: Writer, code: OpCode | Operator, operand: Operand | None) -> None:
    if operand is not None:
        raise EncodeError(
            writer.characteristic, "operand", f"{code.name} takes no operand, got {operand}"
        )


def _wrong_operand(writer: Writer, code: OpCode | Operator, expected: str) -> EncodeError:
    return EncodeError(writer.characteristic, "operand", f"{code.name} takes {expected}")


def _write_single(writer: Writer, operand: _SingleFilter) -> None:
    if isinstance(operand, SequenceNumber):
        writer.u8(FilterType.SEQUENCE_NUMBER, "operand.filter_type")
        writer.u16(operand.sequence_number, "operand.sequence_number")
    else:
        writer.u8(FilterType.USER_FACING_TIME, "operand.filter_type")
        write_date_time(writer, operand.user_facing_time, "operand.user_facing_time")


def _write_range(writer: Writer, operand: _RangeFilter) -> None:
    if isinstance(operand, SequenceNumberRange):
        if operand.minimum > operand.maximum:
            raise EncodeError(writer.characteristic, "operand", "range minimum is above maximum")
        writer.u8(FilterType.SEQUENCE_NUMBER, "operand.filter_type")
        writer.u16(operand.minimum, "operand.minimum")
        writer.u16(operand.maximum, "operand.maximum")
    else:
        if _time_key(operand.minimum) > _time_key(operand.maximum):
            raise EncodeError(writer.characteristic, "operand", "range minimum is above maximum")
        writer.u8(FilterType.USER_FACING_TIME, "operand.filter_type")
        write_date_time(writer, operand.minimum, "operand.minimum")
        write_date_time(writer, operand.maximum, "operand.maximum")


CHARACTERISTICS: Final = (RecordAccessControlPoint,)
"""The codec classes this module registers."""
