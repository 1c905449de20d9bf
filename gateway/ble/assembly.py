"""Turning one session's decoded notifications into whole measurements, ready to normalise.

Pure and synchronous: the session feeds values in arrival order and gets back what is complete.
A glucose measurement that announces a context waits for it (same sequence number); a body
composition measurement split over packets waits for its last packet; a continuous stream
(heart rate, a continuous oximeter, about once a second) is sampled to one value per interval,
because the backend wants a trend, not 86,400 readings a day. Apart from that sampling, nothing
is dropped silently: every value not passed on comes back as a `Rejected` with the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from device_profiles.body_composition import (
    BodyCompositionMeasurement,
    BodyCompositionReassembler,
    ReassemblyError,
)
from device_profiles.glucose import GlucoseMeasurement, GlucoseMeasurementContext, GlucoseRecord

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["DEFAULT_STREAM_INTERVAL", "Assembled", "Assembler", "Rejected"]

DEFAULT_STREAM_INTERVAL: Final = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Assembled:
    """A whole measurement and the raw values that carried it, in arrival order."""

    measurement: object
    raw: tuple[bytes, ...]
    received_at: dt.datetime
    """When its first value arrived (hub clock, UTC)."""
    stored: bool
    """Sent in answer to a RACP request (a stored record), not live."""
    sequence_number: int | None = None
    """The record's sequence number, for the RACP cursor (glucose)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """Values that did not become a measurement, and why (for the log and the counters)."""

    characteristic: int
    reason: str
    values: int = 1


@dataclass(slots=True)
class _Waiting:
    measurement: GlucoseMeasurement
    raw: bytes
    received_at: dt.datetime
    stored: bool


@dataclass(slots=True)
class Assembler:
    """One session's assembly state; feed values with `add`, and call `flush` at the end."""

    streams: frozenset[int] = frozenset()
    """Characteristics to sample (one value per `stream_interval`)."""
    stream_interval: dt.timedelta = DEFAULT_STREAM_INTERVAL
    packets_per_body_composition: int = 2
    _glucose: dict[int, _Waiting] = field(default_factory=dict)
    _body: BodyCompositionReassembler | None = None
    _body_raw: list[bytes] = field(default_factory=list)
    _body_first_at: dt.datetime | None = None
    _last_sample: dict[int, dt.datetime] = field(default_factory=dict)

    def add(
        self,
        characteristic: int,
        value: object,
        raw: bytes,
        received_at: dt.datetime,
        *,
        stored: bool = False,
    ) -> tuple[list[Assembled], list[Rejected]]:
        """Take one decoded value; return what is now whole, and what was rejected."""
        if isinstance(value, GlucoseMeasurement):
            return self._glucose_measurement(value, raw, received_at, stored=stored)
        if isinstance(value, GlucoseMeasurementContext):
            return self._glucose_context(value, raw, received_at, stored=stored)
        if isinstance(value, BodyCompositionMeasurement):
            return self._body_composition(value, raw, received_at, stored=stored)
        if characteristic in self.streams:
            last = self._last_sample.get(characteristic)
            # A hub clock stepped back (NTP) makes the difference negative: take that value.
            if last is not None and dt.timedelta(0) <= received_at - last < self.stream_interval:
                return [], []
            self._last_sample[characteristic] = received_at
        return [Assembled(value, (raw,), received_at, stored)], []

    def flush(self) -> tuple[list[Assembled], list[Rejected]]:
        """Give up waiting: glucose measurements without their context go on, split packets not."""
        done = [
            Assembled(
                GlucoseRecord(sequence, waiting.measurement, None),
                (waiting.raw,),
                waiting.received_at,
                waiting.stored,
                sequence,
            )
            for sequence, waiting in self._glucose.items()
        ]
        self._glucose.clear()
        rejected: list[Rejected] = []
        if self._body is not None and self._body.pending:
            dropped = self._body.reset()
            rejected.append(
                Rejected(
                    BodyCompositionMeasurement.UUID,
                    f"the link ended after {len(dropped)} packet(s) of a split body composition "
                    "measurement; the scale keeps it and sends it again",
                    len(dropped),
                )
            )
            self._body_raw.clear()
        return done, rejected

    @property
    def waiting(self) -> int:
        """Values held back until their partner arrives."""
        body = len(self._body.pending) if self._body is not None else 0
        return len(self._glucose) + body

    def _glucose_measurement(
        self, value: GlucoseMeasurement, raw: bytes, received_at: dt.datetime, *, stored: bool
    ) -> tuple[list[Assembled], list[Rejected]]:
        sequence = value.sequence_number
        done: list[Assembled] = []
        earlier = self._glucose.pop(sequence, None)
        if earlier is not None:
            # Sent again before its context came: the earlier copy goes on without one.
            done.append(self._record(sequence, earlier, None, ()))
        if value.context_information_follows:
            self._glucose[sequence] = _Waiting(value, raw, received_at, stored)
            return done, []
        done.append(
            Assembled(GlucoseRecord(sequence, value, None), (raw,), received_at, stored, sequence)
        )
        return done, []

    def _glucose_context(
        self,
        value: GlucoseMeasurementContext,
        raw: bytes,
        received_at: dt.datetime,
        *,
        stored: bool,
    ) -> tuple[list[Assembled], list[Rejected]]:
        del received_at, stored
        waiting = self._glucose.pop(value.sequence_number, None)
        if waiting is None:
            return [], [
                Rejected(
                    GlucoseMeasurementContext.UUID,
                    f"a context for sequence number {value.sequence_number} arrived without "
                    "its measurement",
                )
            ]
        return [self._record(value.sequence_number, waiting, value, (raw,))], []

    @staticmethod
    def _record(
        sequence: int,
        waiting: _Waiting,
        context: GlucoseMeasurementContext | None,
        context_raw: Iterable[bytes],
    ) -> Assembled:
        return Assembled(
            GlucoseRecord(sequence, waiting.measurement, context),
            (waiting.raw, *context_raw),
            waiting.received_at,
            waiting.stored,
            sequence,
        )

    def _body_composition(
        self,
        value: BodyCompositionMeasurement,
        raw: bytes,
        received_at: dt.datetime,
        *,
        stored: bool,
    ) -> tuple[list[Assembled], list[Rejected]]:
        if self._body is None:
            self._body = BodyCompositionReassembler(self.packets_per_body_composition)
        if not self._body.pending:
            self._body_first_at = received_at
        try:
            whole = self._body.add(value)
        except ReassemblyError as exc:
            self._body_raw.clear()
            earlier = len(exc.packets)
            # The field's name only: the detail may quote measured values, which stay out of logs.
            rejected = Rejected(
                value.UUID,
                f"split measurement dropped: its packets do not fit together ({exc.field})",
                max(earlier, 1),
            )
            if earlier and value.multiple_packet_measurement:
                # The packet that broke the sequence may start the next measurement; tried
                # once on an empty reassembler, so this recursion is one level deep at most.
                done, more = self._body_composition(value, raw, received_at, stored=stored)
                return done, [rejected, *more]
            if earlier:
                return [Assembled(value, (raw,), received_at, stored)], [rejected]
            return [], [rejected]
        if whole is None:
            self._body_raw.append(raw)
            return [], []
        raws = (*self._body_raw, raw)
        self._body_raw.clear()
        first = self._body_first_at or received_at
        return [Assembled(whole, raws, first, stored)], []
