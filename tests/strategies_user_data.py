"""Hypothesis strategies for the User Data Service codecs."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import uint8, uint32

from device_profiles.user_data import (
    DatabaseChangeIncrement,
    UserControlPoint,
    UserControlPointOpCode,
    UserControlPointResponseValue,
    UserIndex,
)

Op = UserControlPointOpCode
Value = UserControlPointResponseValue

consent_codes = st.integers(0, 9999)
op_codes = uint8.map(Op)  # reserved codes become RESERVED_<n> members
raw_parameters = st.binary(max_size=18)


@st.composite
def responses(draw: st.DrawFn) -> UserControlPoint:
    """Response Codes to any request op code, with the response parameter the pair defines."""
    request = draw(op_codes)
    value = draw(uint8.map(Value))
    if value is Value.SUCCESS and request in (Op.REGISTER_NEW_USER, Op.DELETE_USERS):
        return UserControlPoint.response(request, value, user_index=draw(uint8))
    if value is Value.SUCCESS and request is Op.LIST_ALL_USERS:
        return UserControlPoint.response(request, value, number_of_users=draw(uint8))
    raw = request.is_reserved if value is Value.SUCCESS else value.is_reserved
    parameter = draw(raw_parameters) if raw else b""
    return UserControlPoint.response(request, value, parameter=parameter)


reserved_requests = st.builds(
    UserControlPoint,
    op_codes.filter(lambda op: op.is_reserved),
    parameter=raw_parameters,
)

STRATEGIES = {
    UserControlPoint: st.one_of(
        consent_codes.map(UserControlPoint.register_new_user),
        st.builds(UserControlPoint.consent, uint8, consent_codes),
        st.just(UserControlPoint.delete_user_data()),
        st.just(UserControlPoint.list_all_users()),
        uint8.map(UserControlPoint.delete_users),
        responses(),
        reserved_requests,
    ),
    UserIndex: st.builds(UserIndex, uint8),
    DatabaseChangeIncrement: st.builds(DatabaseChangeIncrement, uint32),
}
