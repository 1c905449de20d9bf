"""The User ID shared by multi-user health profiles, and its "unknown user" value."""

from __future__ import annotations

from typing import Final

__all__ = ["UNKNOWN_USER", "UserIdMixin"]

UNKNOWN_USER: Final = 0xFF
"""User ID / User Index 0xFF: the device does not know which of its users this is."""


class UserIdMixin:
    """Adds `unknown_user` to a result that has an optional `user_id` field."""

    __slots__ = ()
    user_id: int | None

    @property
    def unknown_user(self) -> bool:
        """Whether the device reported the user as unknown (User ID 0xFF)."""
        return self.user_id == UNKNOWN_USER
