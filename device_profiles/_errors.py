"""Typed errors raised by the codecs: what went wrong, in which field, at which byte."""

from __future__ import annotations

import enum

__all__ = [
    "DecodeError",
    "EncodeError",
    "ErrorKind",
    "UnknownCharacteristicError",
]


class ErrorKind(enum.StrEnum):
    """Why a payload could not be decoded."""

    EMPTY = "empty"
    """The payload has no bytes at all."""
    MISSING_FIELD = "missing_field"
    """A mandatory or flag-announced field has no bytes left for it."""
    TRUNCATED = "truncated"
    """A field starts but the payload ends inside it."""
    INVALID_VALUE = "invalid_value"
    """A field is complete but holds a value the specification forbids."""
    UNKNOWN_CHARACTERISTIC = "unknown_characteristic"
    """No codec is registered for the characteristic UUID."""


class DecodeError(ValueError):
    """A characteristic payload that does not follow its specification."""

    characteristic: str
    field: str
    offset: int
    kind: ErrorKind
    detail: str

    def __init__(
        self,
        characteristic: str,
        field: str,
        offset: int,
        kind: ErrorKind,
        detail: str = "",
    ) -> None:
        self.characteristic = characteristic
        self.field = field
        self.offset = offset
        self.kind = kind
        self.detail = detail
        text = f"{characteristic}: field '{field}' at byte {offset}: {kind.value}"
        if detail:
            text = f"{text} ({detail})"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the typed attributes when the error crosses a process or a pickle.
        args = (self.characteristic, self.field, self.offset, self.kind, self.detail)
        return (type(self), args)


class UnknownCharacteristicError(DecodeError):
    """No codec is registered for the given characteristic UUID."""

    def __init__(self, characteristic: str, detail: str = "") -> None:
        super().__init__(
            characteristic, "uuid", 0, ErrorKind.UNKNOWN_CHARACTERISTIC, detail or "no codec"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.characteristic, self.detail))


class EncodeError(ValueError):
    """A result that cannot be put on the wire (out of range for its field, or inconsistent)."""

    characteristic: str
    field: str

    def __init__(self, characteristic: str, field: str, detail: str) -> None:
        self.characteristic = characteristic
        self.field = field
        self.detail = detail
        super().__init__(f"{characteristic}: cannot encode field '{field}': {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.characteristic, self.field, self.detail))
