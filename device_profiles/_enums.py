"""Enum bases: a code enum that keeps reserved values as themselves instead of failing."""

from __future__ import annotations

import enum
from typing import Self

__all__ = ["CodeEnum"]


class CodeEnum(enum.IntEnum):
    """An enumerated GATT code; a value in a reserved range becomes a `RESERVED_<n>` member."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if isinstance(value, int) and not isinstance(value, bool):
            # A pseudo-member keeps the code as sent, named so that nobody mistakes it for a
            # known one; the parse never fails or shifts because a device used a newer code.
            member = int.__new__(cls, value)
            member._name_ = f"RESERVED_{value}"
            member._value_ = value
            return member
        return None

    @property
    def is_reserved(self) -> bool:
        """Whether this code is in a range the specification reserves for future use."""
        return self._name_.startswith("RESERVED_")
