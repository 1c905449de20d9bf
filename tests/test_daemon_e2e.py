"""The daemon end to end: simulated devices over the simulated radio, the real daemon, a real
mosquitto the test starts, and a subscriber in the place of the monitoring backend.

Only BlueZ and a real radio are replaced (by the simulators' bleak backend, chosen by the
daemon's configuration as any backend); systemd's notify socket is absent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest
from bumble.hci import Address
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from device_profiles.glucose import GlucoseRecord
from gateway.normalise import to_component
from gateway.reading import UNASSIGNED
from simulators.bleak_backend import get_adapter
from simulators.devices import (
    Behaviours,
    BloodPressureCuff,
    BodyCompositionScale,
    GlucoseMeter,
    HeartRateStrap,
    Pairing,
    PayloadFault,
    SimulatorConfig,
    SpotCheckOximeter,
    Thermometer,
    WeightScale,
)
from simulators.radio import Radio
from tests.hub_harness import HUB, hub_config, running_hub, subscriber, until
from tests.test_commands_e2e import Backend as SupportDesk

if TYPE_CHECKING:
    from pathlib import Path

TIMEOUT_S = 90
SLOW_S = 90
FLAG_UNSET_CLOCK = {"oximeter", "meter"}


def device(
    device_id: str, address: str, profile: str, patient: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Return one provisioned device's configuration entry."""
    entry: dict[str, Any] = {"id": device_id, "address": address, "profile": profile, **extra}
    if patient is not None:
        entry["patient"] = patient
    return entry


def components_of(measurement: object) -> dict[str, dict[str, Any]]:
    """Return the components a measurement must arrive as, by field, as JSON would carry them."""
    observations = measurement.observations()  # type: ignore[attr-defined]
    return {
        o.field: to_component(o).model_dump(mode="json", exclude_none=False) for o in observations
    }


def close_to(iso: str, expected: dt.datetime, tolerance_s: float = 5) -> bool:
    """Return whether an ISO time lies within `tolerance_s` of `expected`."""
    return abs((dt.datetime.fromisoformat(iso) - expected).total_seconds()) <= tolerance_s


def local_to_utc(naive: dt.datetime) -> dt.datetime:
    """Read a device's naive local time in the machine's zone (the hub's, in these tests)."""
    return naive.astimezone(dt.UTC)


@pytest.mark.asyncio
async def test_every_device_type_reading_arrives_with_values_units_codes_patient_and_time(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=11)
    # Every device clock has drifted a minute and a half slow since it was last set.
    slow = Behaviours(clock_start=dt.datetime.now() - dt.timedelta(seconds=SLOW_S))  # noqa: DTZ005

    def config(seed: int) -> SimulatorConfig:
        return SimulatorConfig(seed=seed, behaviours=slow)

    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:E1:01", config(1))
    oximeter = SpotCheckOximeter.on_radio(radio, "F0:00:00:00:E1:02", config(2))
    scale = WeightScale.on_radio(radio, "F0:00:00:00:E1:03", config(3))
    thermometer = Thermometer.on_radio(radio, "F0:00:00:00:E1:04", config(4))
    meter = GlucoseMeter.on_radio(radio, "F0:00:00:00:E1:05", config(5))
    body = BodyCompositionScale.on_radio(radio, "F0:00:00:00:E1:06", config(6))
    devices = [cuff, oximeter, scale, thermometer, meter, body]
    for simulated in devices:
        await simulated.start()
    scale.users.consent_codes[0] = 1111
    body.users.consent_codes[0] = 2222
    # Taken while no hub listens: each device keeps its reading for the hub.
    expected = {
        "cuff": await cuff.measure(),
        "oximeter": await oximeter.measure(),
        "scale": (await scale.measure(user_index=0)).weight,
        "thermometer": await thermometer.measure(),
        "meter": await meter.measure(),
    }
    body_reading = await body.measure(user_index=0)
    taken_at = dt.datetime.now(dt.UTC)
    hub = hub_config(
        tmp_path / "state",
        broker.url,
        [
            device("cuff", "F0:00:00:00:E1:01", "blood_pressure", "patient-a"),
            device("oximeter", "F0:00:00:00:E1:02", "pulse_oximeter", "patient-a"),
            device(
                "scale",
                "F0:00:00:00:E1:03",
                "weight_scale",
                patients={0: "patient-a"},
                consent_codes={0: 1111},
            ),
            device("thermometer", "F0:00:00:00:E1:04", "health_thermometer", "patient-a"),
            device("meter", "F0:00:00:00:E1:05", "glucose", "patient-b"),
            device(
                "body",
                "F0:00:00:00:E1:06",
                "body_composition",
                patients={0: "patient-c"},
                consent_codes={0: 2222},
            ),
        ],
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, hub),
        ):
            await backend.wait_for(
                lambda b: all(b.of(d) for d in [*expected, "body"]) and len(b.of("body")) >= 2
            )
            await backend.wait_for(lambda b: len(b.device_states) >= len(devices))
    finally:
        for simulated in devices:
            await simulated.stop()

    kinds = {
        "cuff": "blood_pressure",
        "oximeter": "pulse_oximetry",
        "scale": "body_weight",
        "thermometer": "body_temperature",
        "meter": "blood_glucose",
    }
    for device_id, measurement in expected.items():
        (reading,) = backend.of(device_id)
        assert reading["kind"] == kinds[device_id]
        assert reading["patient"] == ("patient-b" if device_id == "meter" else "patient-a")
        assert reading["device"]["manufacturer"] == "Vitalbridge Simulated Devices"
        assert reading["device"]["serial"]
        assert reading["battery_level"] is not None
        source = measurement.measurement if isinstance(measurement, GlucoseRecord) else measurement
        if device_id in FLAG_UNSET_CLOCK:
            # These flag a clock nobody set (PLX status, glucose time fault); the hub believes
            # them and dates the reading itself, saying why.
            assert reading["time_source"] == "hub_receive_time"
            assert any("measured_at is the hub receive time" in w for w in reading["warnings"])
        else:
            # The hub read the device clock: the time is the device's, its offset measured.
            assert reading["time_source"] == "device_clock_offset", device_id
            assert abs(reading["clock_offset_s"] + SLOW_S) < 5
        want = components_of(measurement)
        got = {c["field"]: c for c in reading["components"]}
        assert got == want, device_id
        assert all(c["unit"] and (c["mdc_code"] or c["loinc"]) for c in reading["components"])
        stamp = source.timestamp if not isinstance(measurement, GlucoseRecord) else None
        if stamp is not None:
            # The device's own (slow) time, corrected by the offset: the true time.
            assert reading["device_time"] == stamp.timestamp.isoformat()
        assert close_to(reading["measured_at"], taken_at, tolerance_s=10)
    kinds_of_body = sorted(r["kind"] for r in backend.of("body"))
    assert kinds_of_body == ["body_composition", "body_weight"]
    assert {r["patient"] for r in backend.of("body")} == {"patient-c"}
    composition = next(r for r in backend.of("body") if r["kind"] == "body_composition")
    assert body_reading.body_composition is not None
    assert {c["field"]: c for c in composition["components"]} == components_of(
        body_reading.body_composition
    )
    # Each device's retained state: battery and last reading, no health values.
    state = backend.device_states["cuff"]
    assert state["battery_level"] == cuff.behaviours.battery_percent
    assert state["last_reading_at"] is not None
    assert "patient" not in state


@pytest.mark.asyncio
async def test_stored_records_arrive_exactly_once_across_disconnects_mid_transfer(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=12)
    # The meter drops the link after every 4 records of a report, as a flaky one does.
    meter = GlucoseMeter.on_radio(
        radio,
        "F0:00:00:00:E2:01",
        SimulatorConfig(seed=7, behaviours=Behaviours(racp_disconnect_after_records=4)),
    )
    await meter.start()
    for _ in range(10):
        await meter.measure()
    sequences = [record.sequence_number for record in meter.stored_records]
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("meter", "F0:00:00:00:E2:01", "glucose", "patient-g")],
        ble={"resync_interval_s": 0},
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config) as daemon,
        ):
            await backend.wait_for(lambda b: len(b.readings) >= len(sequences))
            # Once the cursor is at the last record a new session finds nothing more to send.
            await backend.wait_for(lambda _: daemon.store.get("meter").racp_cursor == sequences[-1])
            sessions = daemon.store.get("meter").sessions
            await backend.wait_for(lambda _: daemon.store.get("meter").sessions > sessions)
    finally:
        await meter.stop()
    ids = [r["reading_id"] for r in backend.readings]
    assert len(ids) == len(set(ids)) == len(sequences), "a record lost or delivered twice"
    # Three transfers were cut off and resumed (4 + 4 + 2 records), then an empty report.
    assert daemon.sessions.counters["session_failures"] >= 2
    assert daemon.store.get("meter").readings == len(sequences)


@pytest.mark.asyncio
async def test_device_clocks_an_hour_fast_and_reset_to_1970_give_corrected_times(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=13)
    now_local = dt.datetime.now().replace(microsecond=0)  # noqa: DTZ005 - the household's wall clock
    fast = BloodPressureCuff.on_radio(
        radio,
        "F0:00:00:00:E3:01",
        SimulatorConfig(
            seed=1, behaviours=Behaviours(clock_start=now_local + dt.timedelta(hours=1))
        ),
    )
    reset = Thermometer.on_radio(
        radio,
        "F0:00:00:00:E3:02",
        SimulatorConfig(seed=2, behaviours=Behaviours(clock_start=dt.datetime(1970, 1, 1))),  # noqa: DTZ001
    )
    for simulated in (fast, reset):
        await simulated.start()
    taken_at = dt.datetime.now(dt.UTC)
    await fast.measure()
    await reset.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [
            device("fast-cuff", "F0:00:00:00:E3:01", "blood_pressure", "patient-t"),
            device("reset-thermometer", "F0:00:00:00:E3:02", "health_thermometer", "patient-t"),
        ],
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config),
        ):
            await backend.wait_for(lambda b: b.of("fast-cuff") and b.of("reset-thermometer"))
    finally:
        for simulated in (fast, reset):
            await simulated.stop()
    (cuff,) = backend.of("fast-cuff")
    assert cuff["time_source"] == "device_clock_offset"
    assert abs(cuff["clock_offset_s"] - 3600) < 5
    assert cuff["device_time"] > cuff["measured_at"][:19]  # the device's own, an hour ahead
    assert close_to(cuff["measured_at"], taken_at)
    (thermometer,) = backend.of("reset-thermometer")
    assert thermometer["device_time"].startswith("1970-01-01")
    assert thermometer["time_source"] == "device_clock_offset"
    assert thermometer["clock_offset_s"] < -50 * 365 * 86400
    assert close_to(thermometer["measured_at"], taken_at)


@pytest.mark.asyncio
async def test_an_unprovisioned_device_is_never_connected_until_a_pairing_window_opens(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=14)
    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:E4:01", SimulatorConfig(seed=1))
    stranger = Thermometer.on_radio(radio, "F0:00:00:00:E4:02", SimulatorConfig(seed=2))
    connections: list[str] = []
    for simulated in (cuff, stranger):
        await simulated.start()
    await cuff.measure()
    await stranger.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("cuff", "F0:00:00:00:E4:01", "blood_pressure", "patient-p")],
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config) as daemon,
        ):
            await backend.wait_for(lambda b: bool(b.of("cuff")))
            await backend.wait_for(lambda _: bool(daemon.registry.unprovisioned()))
            # Seen and reported, never connected: it still holds its reading.
            if stranger.is_connected:
                connections.append("before the window")
            assert len(stranger.stored_records) == 1
            assert all(r["device"]["id"] == "cuff" for r in backend.readings)
            await daemon.handle("pair", {"minutes": 1, "profile": "health_thermometer"})
            await backend.wait_for(
                lambda b: any(r["kind"] == "body_temperature" for r in b.readings)
            )
            paired = [d for d in daemon.registry.devices() if d.address == "F0:00:00:00:E4:02"]
    finally:
        for simulated in (cuff, stranger):
            await simulated.stop()
    assert connections == []
    assert len(paired) == 1
    (temperature,) = [r for r in backend.readings if r["kind"] == "body_temperature"]
    assert temperature["device"]["id"] == paired[0].id
    # No patient mapping yet for a device paired at home: never attributed by guesswork.
    assert temperature["patient"] == UNASSIGNED


@pytest.mark.asyncio
async def test_a_multi_user_scale_sends_each_users_readings_to_their_patient(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=15)
    from simulators.devices.physiology import PROFILES  # noqa: PLC0415 - test-local data

    scale = WeightScale.on_radio(
        radio,
        "F0:00:00:00:E5:01",
        SimulatorConfig(seed=3, household=(PROFILES["athlete"],)),
    )
    await scale.start()
    scale.users.consent_codes.update({0: 1000, 1: 2001})
    first = (await scale.measure(user_index=0)).weight
    second = (await scale.measure(user_index=1)).weight
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [
            device(
                "scale",
                "F0:00:00:00:E5:01",
                "weight_scale",
                patients={0: "patient-mum", 1: "patient-son"},
                consent_codes={0: 1000, 1: 2001},
            )
        ],
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config),
        ):
            await backend.wait_for(lambda b: len(b.readings) >= 2)
    finally:
        await scale.stop()
    by_patient = {r["patient"]: r for r in backend.readings}
    assert set(by_patient) == {"patient-mum", "patient-son"}
    weight = {
        r["patient"]: Decimal(next(c["value"] for c in r["components"] if c["field"] == "weight"))
        for r in backend.readings
    }
    assert weight["patient-mum"] == first.weight.value
    assert weight["patient-son"] == second.weight.value
    assert by_patient["patient-mum"]["user_index"] == 0
    assert by_patient["patient-son"]["user_index"] == 1


@pytest.mark.asyncio
async def test_a_malformed_payload_is_logged_and_skipped_while_other_devices_carry_on(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=16)
    broken = BloodPressureCuff.on_radio(
        radio,
        "F0:00:00:00:E6:01",
        SimulatorConfig(seed=1, behaviours=Behaviours(payload_fault=PayloadFault.TRUNCATED)),
    )
    healthy = Thermometer.on_radio(radio, "F0:00:00:00:E6:02", SimulatorConfig(seed=2))
    for simulated in (broken, healthy):
        await simulated.start()
    await broken.measure()
    await healthy.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [
            device("broken-cuff", "F0:00:00:00:E6:01", "blood_pressure", "patient-m"),
            device("thermometer", "F0:00:00:00:E6:02", "health_thermometer", "patient-m"),
        ],
    )
    try:
        with capture_logs(processors=[merge_contextvars]) as logs:
            async with (
                asyncio.timeout(TIMEOUT_S),
                subscriber(broker.host, broker.port) as backend,
                running_hub(radio, config) as daemon,
            ):
                await backend.wait_for(lambda b: bool(b.of("thermometer")))
                await backend.wait_for(lambda b: "broken-cuff" in b.device_states)
    finally:
        for simulated in (broken, healthy):
            await simulated.stop()
    assert backend.of("broken-cuff") == []
    malformed = [e for e in logs if e["event"] == "value_malformed"]
    assert malformed, "the malformed value was not logged"
    assert malformed[0]["log_level"] == "warning"
    assert malformed[0]["characteristic"] == "0x2A35"
    assert "advice" in malformed[0]
    assert daemon.sessions.counters["values_malformed"] >= 1
    assert backend.device_states["broken-cuff"]["failures"] == 0


@pytest.mark.asyncio
async def test_readings_synced_while_the_broker_is_down_are_delivered_when_it_returns(
    mosquitto, tmp_path: Path
):
    broker = mosquitto(start=False)
    radio = Radio(seed=17)
    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:E7:01", SimulatorConfig(seed=1))
    await cuff.start()
    for _ in range(3):
        await cuff.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("cuff", "F0:00:00:00:E7:01", "blood_pressure", "patient-o")],
    )
    try:
        async with asyncio.timeout(TIMEOUT_S), running_hub(radio, config) as daemon:
            # Synced into the outbox with no broker anywhere.
            await until(lambda: daemon.outbox.status().depth >= 3)
            await until(lambda: daemon.store.get("cuff").readings == 3)
            broker.start()
            async with subscriber(broker.host, broker.port) as backend:
                await backend.wait_for(lambda b: len(b.of("cuff")) >= 3)
                await backend.wait_for(lambda _: daemon.outbox.status().depth == 0)
    finally:
        await cuff.stop()
    assert len({r["reading_id"] for r in backend.of("cuff")}) == 3


@pytest.mark.asyncio
async def test_vendor_quirks_found_by_device_information_are_applied_by_the_session(
    mosquitto, tmp_path: Path
):
    broker = mosquitto()
    radio = Radio(seed=18)
    clock_first = BloodPressureCuff.on_radio(
        radio,
        "F0:00:00:00:E8:01",
        SimulatorConfig(
            seed=1,
            behaviours=Behaviours(
                requires_clock_set=True,
                # A minute slow: its stored reading is stamped by the clock before the hub set it.
                clock_start=dt.datetime.now() - dt.timedelta(minutes=1),  # noqa: DTZ005
            ),
        ),
    )
    zero_filling = BloodPressureCuff.on_radio(
        radio,
        "F0:00:00:00:E8:02",
        SimulatorConfig(seed=2, behaviours=Behaviours(zero_fills_absent_fields=True)),
    )
    consent_first = WeightScale.on_radio(
        radio,
        "F0:00:00:00:E8:03",
        SimulatorConfig(seed=3, behaviours=Behaviours(consent_required_to_send=True)),
    )
    simulated = (clock_first, zero_filling, consent_first)
    for each in simulated:
        await each.start()
    consent_first.users.consent_codes[0] = 4242
    await clock_first.measure()
    zero_filled = await zero_filling.measure()
    await consent_first.measure(user_index=0)
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [
            device("clock-cuff", "F0:00:00:00:E8:01", "blood_pressure", "patient-q"),
            device("zero-cuff", "F0:00:00:00:E8:02", "blood_pressure", "patient-q"),
            device(
                "consent-scale",
                "F0:00:00:00:E8:03",
                "weight_scale",
                patients={0: "patient-q"},
                consent_codes={0: 4242},
            ),
        ],
    )
    try:
        with capture_logs(processors=[merge_contextvars]) as logs:
            async with (
                asyncio.timeout(TIMEOUT_S),
                subscriber(broker.host, broker.port) as backend,
                running_hub(radio, config),
            ):
                await backend.wait_for(
                    lambda b: all(b.of(d) for d in ("clock-cuff", "zero-cuff", "consent-scale"))
                )
    finally:
        for each in simulated:
            await each.stop()
    applied = {e["device_id"]: e["quirks"] for e in logs if e["event"] == "device_quirks_applied"}
    assert applied == {
        "clock-cuff": ["set_clock_first"],
        "zero-cuff": ["zero_means_absent"],
        "consent-scale": ["consent_before_send"],
    }
    # The clock-first cuff sent its stored reading only once the hub had set its clock.
    (clock_reading,) = backend.of("clock-cuff")
    assert clock_reading["time_source"] == "device_clock_offset"
    assert abs(clock_reading["clock_offset_s"] + 60) < 5
    # The zeros the cuff sent for what it did not measure are not published as values.
    assert zero_filled.pulse_rate is not None  # what the cuff put on the air: a zero
    (zero_reading,) = backend.of("zero-cuff")
    fields = {c["field"]: c for c in zero_reading["components"]}
    assert "pulse_rate" not in fields
    assert fields["mean_arterial_pressure"]["value"] is None
    assert any("zero" in w for w in zero_reading["warnings"])
    (weight,) = backend.of("consent-scale")
    assert weight["patient"] == "patient-q"


@pytest.mark.asyncio
async def test_a_heart_rate_stream_is_sampled_into_readings(mosquitto, tmp_path: Path):
    broker = mosquitto()
    radio = Radio(seed=19)
    strap = HeartRateStrap.on_radio(radio, "F0:00:00:00:E9:01", SimulatorConfig(seed=1))
    await strap.start()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("strap", "F0:00:00:00:E9:01", "heart_rate", "patient-h")],
        ble={"session_timeout_s": 3},
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config) as daemon,
        ):
            streaming = asyncio.create_task(strap.stream(30, interval_s=0.1))
            await backend.wait_for(lambda b: bool(b.of("strap")))
            await until(lambda: daemon.store.get("strap").sessions >= 1)
            streaming.cancel()
    finally:
        await strap.stop()
    reading = backend.of("strap")[0]
    assert reading["kind"] == "heart_rate"
    assert reading["patient"] == "patient-h"
    rate = next(c for c in reading["components"] if c["unit"] == "/min")
    assert 30 <= Decimal(rate["value"]) <= 220
    # About 30 notifications in the session, sampled to one reading a minute.
    assert len(backend.of("strap")) == 1
    # A stream ends at the session limit without counting as a failure.
    assert daemon.store.get("strap").failures == 0


@pytest.mark.asyncio
async def test_a_device_that_requires_pairing_is_bonded_and_read(mosquitto, tmp_path: Path):
    # Configured for Just Works, the session pairs right after connecting; the backend would
    # also pair on the device's "insufficient authentication" answer, as BlueZ does.
    broker = mosquitto()
    radio = Radio(seed=20)
    cuff = BloodPressureCuff.on_radio(
        radio,
        "F0:00:00:00:EA:01",
        SimulatorConfig(seed=1, behaviours=Behaviours(pairing=Pairing.JUST_WORKS)),
    )
    await cuff.start()
    await cuff.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("cuff", "F0:00:00:00:EA:01", "blood_pressure", "patient-j", pairing="just_works")],
    )
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config),
        ):
            await backend.wait_for(lambda b: bool(b.of("cuff")))
            adapter = await get_adapter()
            bonded = await adapter.is_bonded(Address("F0:00:00:00:EA:01"))
    finally:
        await cuff.stop()
    (reading,) = backend.of("cuff")
    assert reading["patient"] == "patient-j"
    # The hub keeps the bond, so the next session needs no pairing.
    assert bonded


@pytest.mark.asyncio
async def test_support_commands_over_mqtt_reach_the_running_daemon(mosquitto, tmp_path: Path):
    broker = mosquitto()
    radio = Radio(seed=22)
    cuff = BloodPressureCuff.on_radio(radio, "F0:00:00:00:EB:01", SimulatorConfig(seed=1))
    await cuff.start()
    await cuff.measure()
    config = hub_config(
        tmp_path / "state",
        broker.url,
        [device("cuff", "F0:00:00:00:EB:01", "blood_pressure", "patient-r")],
    )
    responses = f"hubs/{HUB}/responses/desk"
    try:
        async with (
            asyncio.timeout(TIMEOUT_S),
            subscriber(broker.host, broker.port) as backend,
            running_hub(radio, config) as daemon,
            aiomqtt.Client(
                broker.host,
                broker.port,
                identifier="support-desk",
                protocol=aiomqtt.ProtocolVersion.V5,
            ) as client,
        ):
            await backend.wait_for(lambda b: bool(b.of("cuff")))
            await daemon.publisher.wait_commands_ready()
            await client.subscribe(f"hubs/{HUB}/responses/#", qos=1)
            desk = SupportDesk(client)
            listening = asyncio.create_task(desk.listen())
            try:
                status = await desk.call("status", hub=HUB, response_topic=responses)
                devices = await desk.call("devices", hub=HUB, response_topic=responses)
                sync = await desk.call(
                    "sync_now", {"device_id": "cuff"}, hub=HUB, response_topic=responses
                )
                missing = await desk.call(
                    "sync_now", {"device_id": "no-such"}, hub=HUB, response_topic=responses
                )
                doctor = await desk.call("doctor", {}, hub=HUB, response_topic=responses)
            finally:
                listening.cancel()
    finally:
        await cuff.stop()
    assert status["ok"]
    assert status["result"]["hub_id"] == HUB
    assert [d["device_id"] for d in devices["result"]] == ["cuff"]
    assert "patient-r" not in json.dumps(devices)
    assert sync["ok"]
    assert sync["result"]["device_id"] == "cuff"
    assert missing["error"]["code"] == "not_found"
    checks = {c["name"]: c["status"] for c in doctor["result"]["checks"]}
    # Reached with the hub's identity; a plain mqtt:// broker is only a warning.
    assert checks["broker"] == "warn"
    audit = (tmp_path / "state" / "audit.log").read_text().splitlines()
    assert [json.loads(line)["command"] for line in audit] == [
        "status",
        "devices",
        "sync_now",
        "sync_now",
        "doctor",
    ]
