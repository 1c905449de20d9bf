"""Assembling a session's notifications: glucose pairs, split body composition, stream sampling.

Inputs are made with the real codecs: each value is encoded to its GATT bytes and decoded back,
so that the assembler sees exactly what a session hands it.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from device_profiles import Number
from device_profiles.body_composition import BodyCompositionMeasurement, MeasurementUnits, split
from device_profiles.date_time import DateTime
from device_profiles.glucose import (
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseRecord,
    GlucoseType,
    Meal,
    SampleLocation,
)
from device_profiles.heart_rate import HeartRateMeasurement, SensorContactStatus
from device_profiles.pulse_oximeter import PLXContinuousMeasurement, SpO2PR
from gateway.ble.assembly import DEFAULT_STREAM_INTERVAL, Assembled, Assembler, Rejected

T0 = dt.datetime(2024, 3, 5, 8, 30, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
BASE_TIME = DateTime(2024, 3, 5, 8, 0, 0)


def at(seconds: float) -> dt.datetime:
    """The hub clock `seconds` after T0."""
    return T0 + dt.timedelta(seconds=seconds)


def glucose(sequence: int, *, context: bool = False) -> tuple[GlucoseMeasurement, bytes]:
    """A decoded Glucose Measurement and its bytes (95 mg/dL from a finger, capillary blood)."""
    raw = GlucoseMeasurement(
        sequence,
        BASE_TIME,
        sequence % 60,
        Number(95 + sequence % 7, -5),
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        context_information_follows=context,
    ).encode()
    return GlucoseMeasurement.decode(raw), raw


def glucose_context(sequence: int) -> tuple[GlucoseMeasurementContext, bytes]:
    """A decoded Glucose Measurement Context (before a meal) and its bytes."""
    raw = GlucoseMeasurementContext(sequence, meal=Meal.PREPRANDIAL).encode()
    return GlucoseMeasurementContext.decode(raw), raw


def body_composition(fat: str = "18.3") -> BodyCompositionMeasurement:
    """A 30-octet measurement (every field): too long for one packet at the default ATT_MTU."""
    return BodyCompositionMeasurement(
        Number.from_decimal(fat),
        MeasurementUnits.SI,
        timestamp=BASE_TIME,
        user_id=2,
        basal_metabolism=Number(6000, 0),
        muscle_percentage=Number.from_decimal("40.2"),
        muscle_mass=Number.from_decimal("30.5"),
        fat_free_mass=Number.from_decimal("52.5"),
        soft_lean_mass=Number.from_decimal("49"),
        body_water_mass=Number.from_decimal("38.5"),
        impedance=Number.from_decimal("500"),
        weight=Number.from_decimal("70"),
        height=Number.from_decimal("1.765"),
    )


def packets(
    measurement: BodyCompositionMeasurement,
) -> list[tuple[BodyCompositionMeasurement, bytes]]:
    """The measurement as a scale sends it: split to fit, each packet decoded from its bytes."""
    return [
        (BodyCompositionMeasurement.decode(raw), raw)
        for raw in (packet.encode() for packet in split(measurement))
    ]


def decoded(measurement: BodyCompositionMeasurement) -> BodyCompositionMeasurement:
    """The measurement as it reads when sent whole."""
    return BodyCompositionMeasurement.decode(measurement.encode())


def heart_rate(bpm: int) -> tuple[HeartRateMeasurement, bytes]:
    """A decoded Heart Rate Measurement and its bytes."""
    raw = HeartRateMeasurement(
        Number(bpm, 0), sensor_contact_status=SensorContactStatus.DETECTED
    ).encode()
    return HeartRateMeasurement.decode(raw), raw


def assembled(
    measurement: object,
    raw: tuple[bytes, ...],
    received_at: dt.datetime,
    *,
    stored: bool = False,
    sequence: int | None = None,
) -> Assembled:
    """What the assembler should give back (a live value unless `stored`)."""
    return Assembled(measurement, raw, received_at, stored=stored, sequence_number=sequence)


GLUCOSE = GlucoseMeasurement.UUID
CONTEXT = GlucoseMeasurementContext.UUID
BODY = BodyCompositionMeasurement.UUID
HEART_RATE = HeartRateMeasurement.UUID

# Glucose


def test_a_measurement_without_a_context_passes_at_once():
    assembler = Assembler()
    value, raw = glucose(17)

    done, rejected = assembler.add(GLUCOSE, value, raw, at(0), stored=True)

    assert done == [
        assembled(GlucoseRecord(17, value, None), (raw,), at(0), stored=True, sequence=17)
    ]
    assert rejected == []
    assert assembler.waiting == 0
    record = done[0].measurement
    assert isinstance(record, GlucoseRecord)
    assert record.complete


def test_a_measurement_announcing_a_context_waits_for_it_and_pairs_by_sequence_number():
    assembler = Assembler()
    value, raw = glucose(17, context=True)
    context, context_raw = glucose_context(17)

    first = assembler.add(GLUCOSE, value, raw, at(0), stored=True)
    waiting = assembler.waiting
    second = assembler.add(CONTEXT, context, context_raw, at(1), stored=True)

    assert first == ([], [])
    assert waiting == 1
    assert second == (
        [
            assembled(
                GlucoseRecord(17, value, context),
                (raw, context_raw),
                at(0),
                stored=True,
                sequence=17,
            )
        ],
        [],
    )
    assert assembler.waiting == 0
    record = second[0][0].measurement
    assert isinstance(record, GlucoseRecord)
    assert record.complete


def test_contexts_pair_with_their_own_measurement_whatever_the_order():
    assembler = Assembler()
    first, first_raw = glucose(1, context=True)
    second, second_raw = glucose(2, context=True)
    assembler.add(GLUCOSE, first, first_raw, at(0))
    assembler.add(GLUCOSE, second, second_raw, at(1))

    context_2, context_2_raw = glucose_context(2)
    context_1, context_1_raw = glucose_context(1)
    done_2, _ = assembler.add(CONTEXT, context_2, context_2_raw, at(2))
    done_1, _ = assembler.add(CONTEXT, context_1, context_1_raw, at(3))

    assert done_2 == [
        assembled(
            GlucoseRecord(2, second, context_2),
            (second_raw, context_2_raw),
            at(1),
            stored=False,
            sequence=2,
        )
    ]
    assert done_1 == [
        assembled(
            GlucoseRecord(1, first, context_1),
            (first_raw, context_1_raw),
            at(0),
            stored=False,
            sequence=1,
        )
    ]


def test_a_context_without_its_measurement_is_rejected():
    assembler = Assembler()
    context, context_raw = glucose_context(42)

    done, rejected = assembler.add(CONTEXT, context, context_raw, at(0))

    assert done == []
    assert len(rejected) == 1
    assert rejected[0].characteristic == CONTEXT
    assert rejected[0].values == 1
    assert "42" in rejected[0].reason
    assert "without its measurement" in rejected[0].reason


def test_a_context_for_a_measurement_that_announced_none_is_rejected():
    assembler = Assembler()
    value, raw = glucose(5)
    context, context_raw = glucose_context(5)
    assembler.add(GLUCOSE, value, raw, at(0))

    done, rejected = assembler.add(CONTEXT, context, context_raw, at(1))

    assert done == []
    assert [r.characteristic for r in rejected] == [CONTEXT]


def test_a_measurement_sent_again_before_its_context_lets_the_first_copy_go_without_one():
    assembler = Assembler()
    value, raw = glucose(9, context=True)
    context, context_raw = glucose_context(9)
    assembler.add(GLUCOSE, value, raw, at(0))

    again = assembler.add(GLUCOSE, value, raw, at(5))
    paired = assembler.add(CONTEXT, context, context_raw, at(6))

    assert again == (
        [assembled(GlucoseRecord(9, value, None), (raw,), at(0), sequence=9)],
        [],
    )
    record = again[0][0].measurement
    assert isinstance(record, GlucoseRecord)
    assert record.context_missing
    assert paired == (
        [
            assembled(
                GlucoseRecord(9, value, context),
                (raw, context_raw),
                at(5),
                stored=False,
                sequence=9,
            )
        ],
        [],
    )
    assert assembler.waiting == 0


def test_flush_lets_measurements_waiting_for_a_context_go_without_one():
    assembler = Assembler()
    first, first_raw = glucose(3, context=True)
    second, second_raw = glucose(4, context=True)
    assembler.add(GLUCOSE, first, first_raw, at(0), stored=True)
    assembler.add(GLUCOSE, second, second_raw, at(1), stored=True)

    done, rejected = assembler.flush()

    assert done == [
        assembled(GlucoseRecord(3, first, None), (first_raw,), at(0), stored=True, sequence=3),
        assembled(GlucoseRecord(4, second, None), (second_raw,), at(1), stored=True, sequence=4),
    ]
    assert rejected == []
    assert assembler.waiting == 0
    assert assembler.flush() == ([], [])


def test_flush_of_an_empty_assembler_gives_nothing():
    assert Assembler().flush() == ([], [])


# Body composition


def test_a_measurement_the_fixture_builds_needs_two_packets():
    assert len(body_composition().encode()) == 30
    assert len(packets(body_composition())) == 2


def test_a_two_packet_measurement_reassembles_to_the_measurement_sent_whole():
    assembler = Assembler()
    (first, first_raw), (second, second_raw) = packets(body_composition())

    start = assembler.add(BODY, first, first_raw, at(0), stored=True)
    waiting = assembler.waiting
    done, rejected = assembler.add(BODY, second, second_raw, at(1), stored=True)

    assert start == ([], [])
    assert waiting == 1
    assert rejected == []
    assert done == [
        assembled(decoded(body_composition()), (first_raw, second_raw), at(0), stored=True)
    ]
    assert assembler.waiting == 0


def test_consecutive_split_measurements_each_keep_their_own_packets_and_time():
    assembler = Assembler()
    results = []
    for number, fat in enumerate(("18.3", "21.7")):
        (first, first_raw), (second, second_raw) = packets(body_composition(fat))
        assert assembler.add(BODY, first, first_raw, at(10 * number)) == ([], [])
        results.append(assembler.add(BODY, second, second_raw, at(10 * number + 1)))

    assert [[a.measurement for a in done] for done, _ in results] == [
        [decoded(body_composition("18.3"))],
        [decoded(body_composition("21.7"))],
    ]
    assert [done[0].received_at for done, _ in results] == [at(0), at(10)]
    assert all(len(done[0].raw) == 2 for done, _ in results)


def test_a_measurement_that_fits_one_packet_passes_at_once():
    assembler = Assembler()
    raw = BodyCompositionMeasurement(Number.from_decimal("18.3"), user_id=1).encode()
    value = BodyCompositionMeasurement.decode(raw)

    assert assembler.add(BODY, value, raw, at(0)) == (
        [assembled(value, (raw,), at(0))],
        [],
    )


def test_a_whole_measurement_arriving_mid_split_passes_and_the_half_is_rejected():
    assembler = Assembler()
    (first, first_raw), _ = packets(body_composition())
    whole_raw = BodyCompositionMeasurement(Number.from_decimal("20.1"), user_id=1).encode()
    whole = BodyCompositionMeasurement.decode(whole_raw)
    assembler.add(BODY, first, first_raw, at(0))

    done, rejected = assembler.add(BODY, whole, whole_raw, at(1))

    assert done == [assembled(whole, (whole_raw,), at(1))]
    assert len(rejected) == 1
    assert rejected[0].characteristic == BODY
    assert rejected[0].values == 1
    assert rejected[0].reason.startswith("split measurement dropped:")
    assert assembler.waiting == 0

    # The next split measurement is not mixed with the dropped half.
    (first, first_raw), (second, second_raw) = packets(body_composition("21.7"))
    assembler.add(BODY, first, first_raw, at(2))
    done, rejected = assembler.add(BODY, second, second_raw, at(3))
    assert done == [assembled(decoded(body_composition("21.7")), (first_raw, second_raw), at(2))]
    assert rejected == []


def test_a_first_packet_of_another_measurement_mid_split_starts_it_afresh():
    """The scale gave up on one measurement and began the next: keep the next one whole."""
    assembler = Assembler()
    (stale, stale_raw), _ = packets(body_composition("18.3"))
    (first, first_raw), (second, second_raw) = packets(body_composition("21.7"))
    assembler.add(BODY, stale, stale_raw, at(0))

    restarted = assembler.add(BODY, first, first_raw, at(1))
    done, rejected = assembler.add(BODY, second, second_raw, at(2))

    assert restarted[0] == []
    assert len(restarted[1]) == 1
    assert restarted[1][0].characteristic == BODY
    assert restarted[1][0].values == 1
    assert restarted[1][0].reason.startswith("split measurement dropped:")
    assert done == [assembled(decoded(body_composition("21.7")), (first_raw, second_raw), at(1))]
    assert rejected == []


def test_the_reason_for_a_dropped_split_names_the_field_not_the_values():
    assembler = Assembler()
    (stale, stale_raw), _ = packets(body_composition("18.3"))
    (first, first_raw), _ = packets(body_composition("21.7"))
    assembler.add(BODY, stale, stale_raw, at(0))

    _, rejected = assembler.add(BODY, first, first_raw, at(1))

    assert len(rejected) == 1
    assert "18.3" not in rejected[0].reason
    assert "21.7" not in rejected[0].reason
    assert "body_fat_percentage" in rejected[0].reason


def test_flush_rejects_half_a_split_measurement():
    assembler = Assembler()
    (first, first_raw), _ = packets(body_composition())
    assembler.add(BODY, first, first_raw, at(0))

    done, rejected = assembler.flush()

    assert done == []
    assert len(rejected) == 1
    assert rejected[0].characteristic == BODY
    assert rejected[0].values == 1
    assert "after 1 packet(s)" in rejected[0].reason
    assert assembler.waiting == 0
    assert assembler.flush() == ([], [])


def test_flush_gives_waiting_glucose_and_rejects_half_a_split_together():
    assembler = Assembler()
    value, raw = glucose(8, context=True)
    (first, first_raw), _ = packets(body_composition())
    assembler.add(GLUCOSE, value, raw, at(0))
    assembler.add(BODY, first, first_raw, at(1))
    assert assembler.waiting == 2

    done, rejected = assembler.flush()

    assert [a.sequence_number for a in done] == [8]
    assert [r.characteristic for r in rejected] == [BODY]


# Streams


def test_a_stream_is_sampled_to_one_value_per_interval():
    assembler = Assembler(streams=frozenset({HEART_RATE}), stream_interval=dt.timedelta(seconds=60))
    kept = []
    for seconds in (0, 1, 30, 59.999, 60, 61, 119, 125, 500):
        value, raw = heart_rate(60 + int(seconds) % 100)
        done, rejected = assembler.add(HEART_RATE, value, raw, at(seconds))
        assert rejected == []
        kept.extend((a.received_at, a.measurement, a.raw) for a in done)

    assert [received for received, _, _ in kept] == [at(0), at(60), at(125), at(500)]
    assert [m.heart_rate_measurement_value for _, m, _ in kept] == [
        Number(60, 0),
        Number(120, 0),
        Number(85, 0),
        Number(60, 0),
    ]
    assert all(raw == (measurement.encode(),) for _, measurement, raw in kept)


def test_the_default_stream_interval_is_a_minute():
    assert dt.timedelta(seconds=60) == DEFAULT_STREAM_INTERVAL
    assert Assembler().stream_interval == DEFAULT_STREAM_INTERVAL


def test_each_stream_is_sampled_on_its_own():
    oximeter = PLXContinuousMeasurement.UUID
    assembler = Assembler(streams=frozenset({HEART_RATE, oximeter}))
    value, raw = heart_rate(70)
    spo2_raw = PLXContinuousMeasurement(SpO2PR(Number(97, 0), Number(70, 0))).encode()
    spo2 = PLXContinuousMeasurement.decode(spo2_raw)

    first = assembler.add(HEART_RATE, value, raw, at(0))
    other = assembler.add(oximeter, spo2, spo2_raw, at(1))
    again = assembler.add(HEART_RATE, value, raw, at(2))
    other_again = assembler.add(oximeter, spo2, spo2_raw, at(3))

    assert first == (
        [assembled(value, (raw,), at(0))],
        [],
    )
    assert other == (
        [assembled(spo2, (spo2_raw,), at(1))],
        [],
    )
    assert again == ([], [])
    assert other_again == ([], [])


def test_characteristics_that_are_not_streams_are_never_sampled():
    assembler = Assembler(streams=frozenset({HEART_RATE}))
    value, raw = heart_rate(70)

    results = [assembler.add(HEART_RATE + 1, value, raw, at(0.1 * n)) for n in range(5)]

    assert all(len(done) == 1 and rejected == [] for done, rejected in results)


def test_glucose_and_body_composition_are_never_sampled_even_if_listed_as_streams():
    assembler = Assembler(streams=frozenset({GLUCOSE, BODY}))
    done = []
    for sequence in range(3):
        value, raw = glucose(sequence)
        done.extend(assembler.add(GLUCOSE, value, raw, at(sequence))[0])
    raw = BodyCompositionMeasurement(Number.from_decimal("18.3")).encode()
    value = BodyCompositionMeasurement.decode(raw)
    for n in range(2):
        done.extend(assembler.add(BODY, value, raw, at(n))[0])

    assert len(done) == 5


def test_a_stream_keeps_flowing_after_the_hub_clock_steps_back():
    assembler = Assembler(streams=frozenset({HEART_RATE}))
    value, raw = heart_rate(70)
    assembler.add(HEART_RATE, value, raw, at(3600))

    # The clock is stepped back an hour; two minutes of the stream follow.
    after = [assembler.add(HEART_RATE, value, raw, at(seconds))[0] for seconds in range(121)]

    assert sum(len(done) for done in after) >= 2


# Any interleaving of glucose records


@st.composite
def glucose_sessions(draw: st.DrawFn) -> tuple[dict[int, str], list[tuple[str, int]]]:
    """Measurements (no context, with its context, or a context announced and lost) interleaved.

    Each context comes after its own measurement; contexts of others may come in between.
    """
    sequences = draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=12, unique=True))
    kinds = {sequence: draw(st.sampled_from(["plain", "paired", "lost"])) for sequence in sequences}
    events = [("measurement", sequence) for sequence in draw(st.permutations(sequences))]
    for sequence, kind in kinds.items():
        if kind == "paired":
            after = events.index(("measurement", sequence)) + 1
            events.insert(draw(st.integers(after, len(events))), ("context", sequence))
    return kinds, events


@given(glucose_sessions(), st.booleans())
def test_every_measurement_comes_out_exactly_once_after_flush(session, stored):
    kinds, events = session
    assembler = Assembler()
    sent = {
        sequence: glucose(sequence, context=kind != "plain") for sequence, kind in kinds.items()
    }
    contexts = {sequence: glucose_context(sequence) for sequence in kinds}
    done: list[Assembled] = []
    rejected: list[Rejected] = []
    for number, (kind, sequence) in enumerate(events):
        value, raw = sent[sequence] if kind == "measurement" else contexts[sequence]
        characteristic = GLUCOSE if kind == "measurement" else CONTEXT
        more, refused = assembler.add(characteristic, value, raw, at(number), stored=stored)
        done.extend(more)
        rejected.extend(refused)
    more, refused = assembler.flush()
    done.extend(more)
    rejected.extend(refused)

    assert rejected == []
    assert assembler.waiting == 0
    assert sorted(a.sequence_number for a in done if a.sequence_number is not None) == sorted(kinds)
    assert len(done) == len(kinds)
    for assembled in done:
        record = assembled.measurement
        assert isinstance(record, GlucoseRecord)
        sequence = record.sequence_number
        assert assembled.sequence_number == sequence
        assert record.measurement == sent[sequence][0]
        assert assembled.stored is stored
        assert assembled.received_at == at(events.index(("measurement", sequence)))
        if kinds[sequence] == "paired":
            assert record.context == contexts[sequence][0]
            assert assembled.raw == (sent[sequence][1], contexts[sequence][1])
            assert record.complete
        else:
            assert record.context is None
            assert assembled.raw == (sent[sequence][1],)
            assert record.complete is (kinds[sequence] == "plain")
