"""User Data Service characteristics: User Control Point (0x2A9F), User Index, Database Change.

Field tables: User Data Service (UDS) 1.0 section 3.4 "User Control Point" (Op Codes, Response
Values, Consent Code 0x0000-0x270F) and GSS User Index (0x2A9A, 0xFF = unknown user) and Database
Change Increment (0x2A99, uint32).

UDS 1.0 defines the op codes Register New User (0x01), Consent (0x02), Delete User Data (0x03) and
Response Code (0x20). List All Users (0x04, no parameter; success response parameter Number of
Users uint8) and Delete User(s) (0x05, parameter User Index uint8, 0xFF = all users; success
response parameter the same User Index) were added by UDS 1.1; a UDS 1.0 server answers them with
"Op Code not supported". A reserved op code, or a response whose parameter layout is not defined
(a reserved request op code or response value), keeps its parameter bytes raw in `parameter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import EncodeError
from device_profiles._user import UNKNOWN_USER
from device_profiles._wire import Reader, Writer

__all__ = [
    "ALL_USERS",
    "MAX_CONSENT_CODE",
    "UNKNOWN_USER",
    "DatabaseChangeIncrement",
    "UserControlPoint",
    "UserControlPointOpCode",
    "UserControlPointResponseValue",
    "UserIndex",
]

ALL_USERS: Final = 0xFF
"""User Index 0xFF in a Delete User(s) request: delete every user."""
MAX_CONSENT_CODE: Final = 9999
"""The largest Consent Code (0x270F); larger values are not allowed."""

_OPTIONAL_FIELDS: Final = (
    "user_index",
    "consent_code",
    "request_op_code",
    "response_value",
    "number_of_users",
)


class UserControlPointOpCode(CodeEnum):
    """User Control Point Op Code (UDS 3.4); 0x00, 0x06-0x1F and 0x21-0xFF are reserved."""

    REGISTER_NEW_USER = 0x01
    CONSENT = 0x02
    DELETE_USER_DATA = 0x03
    LIST_ALL_USERS = 0x04
    """Added by UDS 1.1."""
    DELETE_USERS = 0x05
    """Delete User(s); added by UDS 1.1."""
    RESPONSE_CODE = 0x20


class UserControlPointResponseValue(CodeEnum):
    """Response Value of a Response Code (UDS 3.4); 0x00 and 0x06-0xFF are reserved."""

    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    OPERATION_FAILED = 0x04
    USER_NOT_AUTHORIZED = 0x05


_Op = UserControlPointOpCode
_Value = UserControlPointResponseValue


@dataclass(frozen=True, slots=True)
class UserControlPoint:
    """User Control Point (0x2A9F): a request written by the client or the server's response.

    Which optional fields are set follows from the op code: `consent_code` for Register New User
    and Consent, `user_index` for Consent, Delete User(s) and the success responses to Register
    New User and Delete User(s), `number_of_users` for the success response to List All Users.
    Build values with the helper constructors (`register_new_user(1234)`, `response(...)`).
    """

    UUID: ClassVar[int] = 0x2A9F
    NAME: ClassVar[str] = "User Control Point"
    LABEL: ClassVar[str] = "User Control Point (0x2A9F)"

    op_code: UserControlPointOpCode
    user_index: int | None = None
    consent_code: int | None = None
    """The user's consent code, 0..9999."""
    request_op_code: UserControlPointOpCode | None = None
    response_value: UserControlPointResponseValue | None = None
    number_of_users: int | None = None
    parameter: bytes = b""
    """Parameter bytes whose layout this version does not define, kept as sent."""
    warnings: tuple[str, ...] = ()

    @classmethod
    def register_new_user(cls, consent_code: int) -> Self:
        """Request a new user protected by `consent_code` (0..9999)."""
        return cls(_Op.REGISTER_NEW_USER, consent_code=consent_code)

    @classmethod
    def consent(cls, user_index: int, consent_code: int) -> Self:
        """Request access to the data of user `user_index` with its consent code."""
        return cls(_Op.CONSENT, user_index=user_index, consent_code=consent_code)

    @classmethod
    def delete_user_data(cls) -> Self:
        """Request deletion of the current user's data."""
        return cls(_Op.DELETE_USER_DATA)

    @classmethod
    def list_all_users(cls) -> Self:
        """Request the list of all registered users (UDS 1.1)."""
        return cls(_Op.LIST_ALL_USERS)

    @classmethod
    def delete_users(cls, user_index: int = ALL_USERS) -> Self:
        """Request deletion of user `user_index`, or of every user with 0xFF (UDS 1.1)."""
        return cls(_Op.DELETE_USERS, user_index=user_index)

    @classmethod
    def response(
        cls,
        request_op_code: UserControlPointOpCode,
        response_value: UserControlPointResponseValue,
        *,
        user_index: int | None = None,
        number_of_users: int | None = None,
        parameter: bytes = b"",
    ) -> Self:
        """Build a Response Code to `request_op_code` with its response parameter, if any."""
        return cls(
            _Op.RESPONSE_CODE,
            user_index=user_index,
            request_op_code=request_op_code,
            response_value=response_value,
            number_of_users=number_of_users,
            parameter=parameter,
        )

    @property
    def is_response(self) -> bool:
        """Whether this is the server's Response Code rather than a request."""
        return self.op_code is _Op.RESPONSE_CODE

    @property
    def is_success(self) -> bool:
        """Whether this is a Response Code reporting success."""
        return self.response_value is _Value.SUCCESS

    @property
    def deletes_all_users(self) -> bool:
        """Whether this is a Delete User(s) request or response for every user (0xFF)."""
        deletes = _Op.DELETE_USERS in (self.op_code, self.request_op_code)
        return deletes and self.user_index == ALL_USERS

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a User Control Point value (UDS 3.4 op code and parameter tables)."""
        reader = Reader(data, cls.LABEL)
        op_code = _Op(reader.u8("op_code"))
        user_index: int | None = None
        consent_code: int | None = None
        request_op_code: UserControlPointOpCode | None = None
        response_value: UserControlPointResponseValue | None = None
        number_of_users: int | None = None
        parameter = b""
        if op_code is _Op.REGISTER_NEW_USER:
            consent_code = _read_consent_code(reader)
        elif op_code is _Op.CONSENT:
            user_index = reader.u8("user_index")
            consent_code = _read_consent_code(reader)
        elif op_code is _Op.DELETE_USERS:
            user_index = reader.u8("user_index")
        elif op_code is _Op.RESPONSE_CODE:
            request_op_code = _Op(reader.u8("request_op_code"))
            response_value = _Value(reader.u8("response_value"))
            if response_value is _Value.SUCCESS:
                if request_op_code in _USER_INDEX_RESPONSES:
                    user_index = reader.u8("user_index")
                elif request_op_code is _Op.LIST_ALL_USERS:
                    number_of_users = reader.u8("number_of_users")
                elif request_op_code.is_reserved:
                    parameter = reader.rest()
            elif response_value.is_reserved:
                parameter = reader.rest()
        elif op_code.is_reserved:
            parameter = reader.rest()
        return cls(
            op_code,
            user_index,
            consent_code,
            request_op_code,
            response_value,
            number_of_users,
            parameter,
            reader.finish(),
        )

    def encode(self) -> bytes:
        """Encode as a User Control Point value; fields that do not fit the op code raise."""
        writer = Writer(self.LABEL)
        expected, raw = _layout(self)
        for name in _OPTIONAL_FIELDS:
            present = getattr(self, name) is not None
            if present != (name in expected):
                state = "is required" if name in expected else "must be None"
                raise EncodeError(self.LABEL, name, f"{state} for op code {self.op_code.name}")
        if self.parameter and not raw:
            raise EncodeError(
                self.LABEL, "parameter", f"not allowed for op code {self.op_code.name}"
            )
        writer.u8(self.op_code, "op_code")
        if self.request_op_code is not None and self.response_value is not None:
            writer.u8(self.request_op_code, "request_op_code")
            writer.u8(self.response_value, "response_value")
        if self.user_index is not None:
            writer.u8(self.user_index, "user_index")
        if self.consent_code is not None:
            if not 0 <= self.consent_code <= MAX_CONSENT_CODE:
                raise EncodeError(
                    self.LABEL, "consent_code", f"{self.consent_code} is outside 0..9999"
                )
            writer.u16(self.consent_code, "consent_code")
        if self.number_of_users is not None:
            writer.u8(self.number_of_users, "number_of_users")
        writer.raw(self.parameter)
        return writer.bytes()


_USER_INDEX_RESPONSES: Final = (_Op.REGISTER_NEW_USER, _Op.DELETE_USERS)
_REQUEST_LAYOUTS: Final[dict[UserControlPointOpCode, tuple[str, ...]]] = {
    _Op.REGISTER_NEW_USER: ("consent_code",),
    _Op.CONSENT: ("user_index", "consent_code"),
    _Op.DELETE_USER_DATA: (),
    _Op.LIST_ALL_USERS: (),
    _Op.DELETE_USERS: ("user_index",),
}


def _layout(value: UserControlPoint) -> tuple[tuple[str, ...], bool]:
    """Return the optional fields the op code carries, and whether raw parameter bytes follow."""
    op_code = value.op_code
    if op_code is not _Op.RESPONSE_CODE:
        return _REQUEST_LAYOUTS.get(op_code, ()), op_code.is_reserved
    header = ("request_op_code", "response_value")
    request, response = value.request_op_code, value.response_value
    if request is None or response is None:
        return header, False
    if response is _Value.SUCCESS:
        if request in _USER_INDEX_RESPONSES:
            return (*header, "user_index"), False
        if request is _Op.LIST_ALL_USERS:
            return (*header, "number_of_users"), False
        return header, request.is_reserved
    return header, response.is_reserved


def _read_consent_code(reader: Reader) -> int:
    offset = reader.offset
    consent_code = reader.u16("consent_code")
    if consent_code > MAX_CONSENT_CODE:
        raise reader.invalid("consent_code", offset, f"{consent_code} is outside 0..9999")
    return consent_code


@dataclass(frozen=True, slots=True)
class UserIndex:
    """User Index (0x2A9A): the index of the current user, 0xFF when the user is unknown."""

    UUID: ClassVar[int] = 0x2A9A
    NAME: ClassVar[str] = "User Index"
    LABEL: ClassVar[str] = "User Index (0x2A9A)"

    user_index: int
    warnings: tuple[str, ...] = ()

    @property
    def unknown_user(self) -> bool:
        """Whether the server reported the current user as unknown (0xFF)."""
        return self.user_index == UNKNOWN_USER

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a User Index value."""
        reader = Reader(data, cls.LABEL)
        user_index = reader.u8("user_index")
        return cls(user_index, reader.finish())

    def encode(self) -> bytes:
        """Encode as a User Index value."""
        writer = Writer(self.LABEL)
        writer.u8(self.user_index, "user_index")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class DatabaseChangeIncrement:
    """Database Change Increment (0x2A99): counts changes to the current user's data set."""

    UUID: ClassVar[int] = 0x2A99
    NAME: ClassVar[str] = "Database Change Increment"
    LABEL: ClassVar[str] = "Database Change Increment (0x2A99)"

    database_change_increment: int
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Database Change Increment value."""
        reader = Reader(data, cls.LABEL)
        increment = reader.u32("database_change_increment")
        return cls(increment, reader.finish())

    def encode(self) -> bytes:
        """Encode as a Database Change Increment value."""
        writer = Writer(self.LABEL)
        writer.u32(self.database_change_increment, "database_change_increment")
        return writer.bytes()


CHARACTERISTICS: Final = (UserControlPoint, UserIndex, DatabaseChangeIncrement)
"""The codec classes this module registers."""
