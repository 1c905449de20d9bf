"""Stored records and the Record Access Control Point that serves them (Glucose, Pulse Oximeter).

`RecordStore` keeps what a device measured, numbered by a wrapping uint16 sequence number.
`RacpServer` is the control point: it checks each request as the Glucose Service and the Pulse
Oximeter Service ask (answering with the right Response Code), runs one procedure at a time per
link, reports records through the profile's own characteristics, and stops on Abort or when the
link goes. The "drop the link after N records" behaviour is applied here.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from bumble import att, gatt

from device_profiles import DecodeError
from device_profiles.racp import (
    OpCode,
    Operator,
    RawOperand,
    RecordAccessControlPoint,
    ResponseCode,
    SequenceNumber,
    SequenceNumberRange,
    UserFacingTime,
    UserFacingTimeRange,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from device_profiles.racp import Operand
    from simulators.devices.base import Link, SimulatedDevice

__all__ = [
    "ALL_OPERATORS",
    "CCCD_IMPROPERLY_CONFIGURED",
    "PROCEDURE_ALREADY_IN_PROGRESS",
    "RacpServer",
    "RecordStore",
    "StoredRecord",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ATT errors (Core Specification Supplement common profile errors) the control point raises.
CCCD_IMPROPERLY_CONFIGURED: Final = att.ErrorCode.CCCD_IMPROPERLY_CONFIGURED
PROCEDURE_ALREADY_IN_PROGRESS: Final = att.ErrorCode.PROCEDURE_ALREADY_IN_PROGRESS

ALL_OPERATORS: Final = frozenset(
    (
        Operator.ALL_RECORDS,
        Operator.LESS_THAN_OR_EQUAL_TO,
        Operator.GREATER_THAN_OR_EQUAL_TO,
        Operator.WITHIN_RANGE_OF,
        Operator.FIRST_RECORD,
        Operator.LAST_RECORD,
    )
)
"""Every operator of the Glucose Service's RACP, with sequence-number operands."""

_SEQUENCE_MASK: Final = 0xFFFF
_PROCEDURES: Final = frozenset(
    (
        OpCode.REPORT_STORED_RECORDS,
        OpCode.DELETE_STORED_RECORDS,
        OpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    )
)


@dataclass(frozen=True, slots=True)
class StoredRecord(Generic[T]):
    """One record of a device's memory and its sequence number."""

    sequence_number: int
    value: T


class RecordStore(Generic[T]):
    """A device's memory of measurements, oldest first, numbered from 1 (uint16, wrapping)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._records: list[StoredRecord[T]] = []
        self._next = 1

    @property
    def records(self) -> tuple[StoredRecord[T], ...]:
        """Every stored record, oldest first."""
        return tuple(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def next_sequence_number(self) -> int:
        """Return the sequence number the next record will get."""
        return self._next

    def make(self, build: Callable[[int], T]) -> StoredRecord[T]:
        """Give the value that `build(sequence_number)` makes its number, without storing it."""
        record = StoredRecord(self._next, build(self._next))
        self._next = (self._next + 1) & _SEQUENCE_MASK
        return record

    def add(self, build: Callable[[int], T]) -> StoredRecord[T]:
        """Store the value `build(sequence_number)` makes; a full memory forgets the oldest."""
        record = self.make(build)
        self._records.append(record)
        del self._records[: -self.capacity]
        return record

    def select(self, operator: Operator, operand: Operand | None) -> list[StoredRecord[T]]:
        """Return the records that a RACP operator and sequence-number operand pick."""
        records = self._records
        if operator is Operator.FIRST_RECORD:
            return records[:1]
        if operator is Operator.LAST_RECORD:
            return records[-1:]
        if isinstance(operand, SequenceNumber):
            number = operand.sequence_number
            if operator is Operator.LESS_THAN_OR_EQUAL_TO:
                return [r for r in records if r.sequence_number <= number]
            return [r for r in records if r.sequence_number >= number]
        if isinstance(operand, SequenceNumberRange):
            low, high = operand.minimum, operand.maximum
            return [r for r in records if low <= r.sequence_number <= high]
        return list(records)

    def delete(self, doomed: Sequence[StoredRecord[T]]) -> None:
        """Forget these records."""
        gone = {id(record) for record in doomed}
        self._records = [r for r in self._records if id(r) not in gone]


class RacpServer(Generic[T]):
    """The Record Access Control Point of one device, serving one `RecordStore`."""

    def __init__(
        self,
        owner: SimulatedDevice,
        store: RecordStore[T],
        send_record: Callable[[StoredRecord[T]], Awaitable[bool]],
        *,
        operators: frozenset[Operator] = ALL_OPERATORS,
        report_needs: Sequence[tuple[gatt.Characteristic[bytes], bool]] = (),
    ) -> None:
        self._owner = owner
        self._store = store
        self._send_record = send_record
        self._operators = operators
        self._report_needs = tuple(report_needs)
        self.characteristic = owner.characteristic(
            RecordAccessControlPoint.UUID,
            gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.INDICATE,
            write=self._on_write,
        )

    def link_down(self, link: Link) -> None:
        """Stop the procedure of a link that is gone."""
        task, link.procedure = link.procedure, None
        if task is not None:
            task.cancel()

    def _on_write(self, link: Link, data: bytes) -> None:
        owner = self._owner
        if not data:
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH)
        if not owner.subscribed(self.characteristic, indicate=True):
            raise att.ATT_Error(CCCD_IMPROPERLY_CONFIGURED)
        try:
            request = RecordAccessControlPoint.decode(data)
        except DecodeError:
            # Only the op code is known; the rest of the request could not be read.
            owner.spawn(self._respond(OpCode(data[0]), ResponseCode.INVALID_OPERAND), "racp")
            return
        if request.op_code is OpCode.ABORT_OPERATION:
            owner.spawn(self._abort(link, request), "racp-abort")
            return
        if link.procedure is not None and not link.procedure.done():
            raise att.ATT_Error(PROCEDURE_ALREADY_IN_PROGRESS)
        if request.op_code is OpCode.REPORT_STORED_RECORDS and not all(
            owner.subscribed(characteristic, indicate=indicate)
            for characteristic, indicate in self._report_needs
        ):
            raise att.ATT_Error(CCCD_IMPROPERLY_CONFIGURED)
        link.procedure = owner.spawn(self._run(link, request), "racp")

    def _check(self, request: RecordAccessControlPoint) -> ResponseCode | None:
        if request.op_code not in _PROCEDURES:
            return ResponseCode.OP_CODE_NOT_SUPPORTED
        operator = request.operator
        if operator is Operator.NULL:
            return ResponseCode.INVALID_OPERATOR
        if operator.is_reserved or operator not in self._operators:
            return ResponseCode.OPERATOR_NOT_SUPPORTED
        if isinstance(request.operand, RawOperand | UserFacingTime | UserFacingTimeRange):
            return ResponseCode.OPERAND_NOT_SUPPORTED
        if request.warnings:
            # An empty range or stray operand bytes: well-formed, but not a request to serve.
            return ResponseCode.INVALID_OPERAND
        return None

    async def _run(self, link: Link, request: RecordAccessControlPoint) -> None:
        op_code = request.op_code
        problem = self._check(request)
        if problem is not None:
            await self._finish(link, op_code, problem)
            return
        records = self._store.select(request.operator, request.operand)
        logger.debug("racp_request", extra={"op_code": op_code.name, "records": len(records)})
        if op_code is OpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            self._done(link)
            answer = RecordAccessControlPoint.number_of_stored_records_response(len(records))
            await self._owner.send(self.characteristic, answer, indicate=True)
            return
        if not records:
            await self._finish(link, op_code, ResponseCode.NO_RECORDS_FOUND)
            return
        if op_code is OpCode.DELETE_STORED_RECORDS:
            self._store.delete(records)
            await self._finish(link, op_code, ResponseCode.SUCCESS)
            return
        limit = self._owner.behaviours.racp_disconnect_after_records
        for count, record in enumerate(records, start=1):
            if not await self._send_record(record):
                if not link.lost.done():
                    await self._finish(link, op_code, ResponseCode.PROCEDURE_NOT_COMPLETED)
                return
            if limit is not None and count == limit and count < len(records):
                logger.debug("racp_link_dropped", extra={"after_records": count})
                await self._owner.disconnect(link)
                return
        await self._finish(link, op_code, ResponseCode.SUCCESS)
        self._owner.after_send()

    @staticmethod
    def _done(link: Link) -> None:
        # The procedure ends with its response: a hub may write the next request as soon as
        # it sees the response, before the indication's confirmation is back.
        if link.procedure is asyncio.current_task():
            link.procedure = None

    async def _finish(self, link: Link, op_code: OpCode, code: ResponseCode) -> None:
        self._done(link)
        await self._respond(op_code, code)

    async def _abort(self, link: Link, request: RecordAccessControlPoint) -> None:
        if request.operator is not Operator.NULL or request.operand is not None:
            await self._respond(OpCode.ABORT_OPERATION, ResponseCode.INVALID_OPERATOR)
            return
        running, link.procedure = link.procedure, None
        if running is not None and not running.done():
            running.cancel()
            await asyncio.wait([running])
        await self._respond(OpCode.ABORT_OPERATION, ResponseCode.SUCCESS)

    async def _respond(self, op_code: OpCode, code: ResponseCode) -> None:
        response = RecordAccessControlPoint.response(op_code, code)
        await self._owner.send(self.characteristic, response, indicate=True)
