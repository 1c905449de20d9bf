"""Hypothesis strategies for the Record Access Control Point codec."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import date_times, uint16

from device_profiles.racp import (
    NumberOfStoredRecords,
    OpCode,
    Operator,
    RecordAccessControlPoint,
    ResponseCode,
    ResponseCodeOperand,
    SequenceNumber,
    SequenceNumberRange,
    UserFacingTime,
    UserFacingTimeRange,
)


def _time_key(value):
    return (value.year, value.month, value.day, value.hours, value.minutes, value.seconds)


filtered_op_codes = st.sampled_from(
    [
        OpCode.REPORT_STORED_RECORDS,
        OpCode.DELETE_STORED_RECORDS,
        OpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    ]
)
sequence_ranges = st.lists(uint16, min_size=2, max_size=2).map(
    lambda pair: SequenceNumberRange(min(pair), max(pair))
)
time_ranges = st.lists(date_times, min_size=2, max_size=2).map(
    lambda pair: UserFacingTimeRange(*sorted(pair, key=_time_key))
)

plain_requests = st.builds(
    RecordAccessControlPoint,
    filtered_op_codes,
    st.sampled_from([Operator.ALL_RECORDS, Operator.FIRST_RECORD, Operator.LAST_RECORD]),
)
single_requests = st.builds(
    RecordAccessControlPoint,
    filtered_op_codes,
    st.sampled_from([Operator.LESS_THAN_OR_EQUAL_TO, Operator.GREATER_THAN_OR_EQUAL_TO]),
    st.one_of(uint16.map(SequenceNumber), date_times.map(UserFacingTime)),
)
range_requests = st.builds(
    RecordAccessControlPoint,
    filtered_op_codes,
    st.just(Operator.WITHIN_RANGE_OF),
    st.one_of(sequence_ranges, time_ranges),
)
responses_and_abort = st.one_of(
    uint16.map(RecordAccessControlPoint.number_of_stored_records_response),
    st.builds(
        RecordAccessControlPoint,
        st.just(OpCode.RESPONSE_CODE),
        st.just(Operator.NULL),
        st.builds(
            ResponseCodeOperand,
            st.integers(0, 0xFF).map(OpCode),
            st.integers(0, 0xFF).map(ResponseCode),
        ),
    ),
    st.just(RecordAccessControlPoint.abort_operation()),
    st.builds(NumberOfStoredRecords, uint16).map(
        lambda n: RecordAccessControlPoint(OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, operand=n)
    ),
)

STRATEGIES = {
    RecordAccessControlPoint: st.one_of(
        plain_requests, single_requests, range_requests, responses_and_abort
    )
}
