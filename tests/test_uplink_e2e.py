"""The uplink end to end: GATT bytes to Reading, outbox, publisher, a real broker, a subscriber.

The subscriber sees exactly the Reading's canonical JSON, and that JSON validates against the
committed JSON Schema (gateway/schemas/reading.schema.json) with a real validator.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import jsonschema
import pytest

import device_profiles
from gateway.mqtt import Publisher, PublisherSettings
from gateway.normalise import normalise
from gateway.outbox import Outbox, OutboxEntry
from gateway.reading import DeviceInfo, Reading
from gateway.timebase import ClockState

SCHEMA = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "reading.schema.json"
HUB = "hub-e2e"
# A hypertensive morning reading: 152/95 mmHg, MAP 114, pulse 78, user 1, 2025-03-01 07:30:15.
BPM = bytes.fromhex("1e" + "9800" + "5f00" + "7200" + "e9070301071e0f" + "4e00" + "01" + "0000")


@pytest.mark.asyncio
async def test_a_cuff_reading_reaches_the_backend_exactly_as_its_schema_says(mosquitto, tmp_path):
    broker = mosquitto()
    measurement = device_profiles.decode(0x2A35, BPM)
    reading = normalise(
        measurement,
        DeviceInfo(id="cuff-1", manufacturer="Acme", model="BP-20", profile="blood_pressure"),
        ClockState.synced(),
        {1: "patient-3f9a"},
        hub_id=HUB,
        hub_tz=ZoneInfo("Europe/London"),
        received_at=dt.datetime(2025, 3, 1, 7, 31, tzinfo=dt.UTC),
        raw=BPM,
        battery_level=80,
    )
    settings = PublisherSettings.model_validate(
        {
            "broker_url": broker.url,
            "hub_id": HUB,
            "topic_prefix": "",
            "backoff_base_s": 0.05,
            "backoff_cap_s": 0.3,
        }
    )
    async with asyncio.timeout(30):
        outbox = await Outbox.open(tmp_path / "outbox.db", max_rows=100, max_bytes=1_000_000)
        async with outbox, aiomqtt.Client(broker.host, broker.port) as subscriber:
            await subscriber.subscribe(f"hubs/{HUB}/readings/#", qos=1)
            assert await outbox.put(OutboxEntry.from_reading(reading))
            publisher = Publisher(settings, outbox)
            task = asyncio.create_task(publisher.run(), name="publisher")
            try:
                message = await anext(aiomqtt_messages(subscriber))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert str(message.topic) == f"hubs/{HUB}/readings/blood_pressure"
    assert message.payload == reading.to_json_bytes()
    document = json.loads(message.payload)
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert Reading.model_validate_json(message.payload) == reading
    assert document["patient"] == "patient-3f9a"
    values = {c["code"]: c["value"] for c in document["components"]}
    assert values["systolic_pressure"] == "152"
    assert values["mean_arterial_pressure"] == "114"
    assert document["measured_at"].startswith("2025-03-01T07:30:15")


async def aiomqtt_messages(client: aiomqtt.Client):
    """The messages a subscribed client receives, as an async iterator."""
    async for message in client.messages:
        yield message
