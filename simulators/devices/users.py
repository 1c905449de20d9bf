"""The User Data Service of a multi-user device: registration with a consent code, and consent.

UDS 1.0 as scales use it: a hub registers a new user under a consent code (0..9999) and gets a
User Index back; on each later connection it gives that index and code (Consent) before the
device tags readings with the user or lets it read the user's Database Change Increment. Delete
User Data removes the consented user. UDS 1.1 op codes (List All Users, Delete User(s)) are
answered "op code not supported", as a UDS 1.0 server does. Age, height and the other user data
characteristics are not served: `device_profiles` has no codec for them, and every value a
simulator serves is built from a codec.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from bumble import att, gatt

from device_profiles import DecodeError
from device_profiles.user_data import (
    UNKNOWN_USER,
    DatabaseChangeIncrement,
    UserControlPoint,
    UserControlPointOpCode,
    UserControlPointResponseValue,
    UserIndex,
)
from simulators.devices.records import CCCD_IMPROPERLY_CONFIGURED

if TYPE_CHECKING:
    from collections.abc import Callable

    from simulators.devices.base import Link, SimulatedDevice

__all__ = ["USER_DATA_ACCESS_NOT_PERMITTED", "UserDataServer"]

logger = logging.getLogger(__name__)

USER_DATA_ACCESS_NOT_PERMITTED: Final = 0x80
"""UDS ATT application error: user data read or written without consent."""

_P = gatt.Characteristic.Properties
_Op = UserControlPointOpCode
_Value = UserControlPointResponseValue


class UserDataServer:
    """User Control Point, User Index and Database Change Increment for one device."""

    def __init__(
        self,
        owner: SimulatedDevice,
        *,
        max_users: int = 4,
        on_consent: Callable[[Link], None] | None = None,
    ) -> None:
        self._owner = owner
        self.max_users = max_users
        self._on_consent = on_consent
        self.consent_codes: dict[int, int] = {}
        """Registered users: user index to consent code."""
        self._increments: dict[int, int] = {}
        self.control_point = owner.characteristic(
            UserControlPoint.UUID, _P.WRITE | _P.INDICATE, write=self._on_write
        )
        self.user_index_characteristic = owner.characteristic(
            UserIndex.UUID, _P.READ, read=self._user_index
        )
        self.change_increment_characteristic = owner.characteristic(
            DatabaseChangeIncrement.UUID,
            _P.READ | _P.WRITE | _P.NOTIFY,
            read=self._change_increment,
            write=self._write_change_increment,
        )

    def service(self) -> gatt.Service:
        """Return the User Data Service holding the three characteristics."""
        return gatt.Service(
            gatt.GATT_USER_DATA_SERVICE,
            [
                self.change_increment_characteristic,
                self.user_index_characteristic,
                self.control_point,
            ],
        )

    def _user_index(self) -> UserIndex:
        link = self._owner.link
        return UserIndex(link.user_index if link is not None else UNKNOWN_USER)

    def _consented(self) -> int:
        link = self._owner.link
        if link is None or link.user_index == UNKNOWN_USER:
            raise att.ATT_Error(USER_DATA_ACCESS_NOT_PERMITTED)
        return link.user_index

    def _change_increment(self) -> DatabaseChangeIncrement:
        return DatabaseChangeIncrement(self._increments.get(self._consented(), 0))

    def _write_change_increment(self, link: Link, data: bytes) -> None:
        del link
        user = self._consented()
        try:
            value = DatabaseChangeIncrement.decode(data)
        except DecodeError as exc:
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH) from exc
        self._increments[user] = value.database_change_increment

    def _on_write(self, link: Link, data: bytes) -> None:
        if not data:
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH)
        if not self._owner.subscribed(self.control_point, indicate=True):
            raise att.ATT_Error(CCCD_IMPROPERLY_CONFIGURED)
        try:
            request = UserControlPoint.decode(data)
        except DecodeError:
            # A consent code above 9999 or a short parameter: only the op code is known.
            response = UserControlPoint.response(_Op(data[0]), _Value.INVALID_PARAMETER)
        else:
            response = self._handle(link, request)
        self._owner.spawn(self._respond(link, response), "uds")

    def _handle(self, link: Link, request: UserControlPoint) -> UserControlPoint:
        op_code = request.op_code
        if op_code is _Op.REGISTER_NEW_USER and request.consent_code is not None:
            free = sorted(set(range(self.max_users)) - set(self.consent_codes))
            if not free:
                return UserControlPoint.response(op_code, _Value.OPERATION_FAILED)
            index = free[0]
            self.consent_codes[index] = request.consent_code
            self._increments[index] = 0
            logger.debug("user_registered", extra={"user_index": index})
            return UserControlPoint.response(op_code, _Value.SUCCESS, user_index=index)
        if op_code is _Op.CONSENT and request.user_index is not None:
            code = self.consent_codes.get(request.user_index)
            if code is None:
                return UserControlPoint.response(op_code, _Value.INVALID_PARAMETER)
            if code != request.consent_code:
                return UserControlPoint.response(op_code, _Value.USER_NOT_AUTHORIZED)
            link.user_index = request.user_index
            return UserControlPoint.response(op_code, _Value.SUCCESS)
        if op_code is _Op.DELETE_USER_DATA:
            if link.user_index == UNKNOWN_USER:
                return UserControlPoint.response(op_code, _Value.USER_NOT_AUTHORIZED)
            self.consent_codes.pop(link.user_index, None)
            self._increments.pop(link.user_index, None)
            link.user_index = UNKNOWN_USER
            return UserControlPoint.response(op_code, _Value.SUCCESS)
        return UserControlPoint.response(op_code, _Value.OP_CODE_NOT_SUPPORTED)

    async def _respond(self, link: Link, response: UserControlPoint) -> None:
        await self._owner.send(self.control_point, response, indicate=True)
        consented = response.request_op_code is _Op.CONSENT and response.is_success
        if consented and self._on_consent is not None:
            self._on_consent(link)
