"""The hub configuration: a TOML file, VITALBRIDGE_* overrides, and errors a person can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import (
    DEFAULT_STATE_DIR,
    ENV_PREFIX,
    DeviceProfile,
    PairingMethod,
    config_from_mapping,
    dump_redacted,
    load_config,
)
from gateway.errors import ConfigError
from gateway.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, OutboxPolicy

MINIMAL = """\
hub_id = "hub-0042"

[mqtt]
broker_url = "mqtt://127.0.0.1:18830"
"""

FULL = """\
hub_id = "hub-0042"
state_dir = "/srv/vitalbridge"
timezone = "Europe/London"
status_interval_s = 30

[mqtt]
broker_url = "mqtts://broker.example:8883"
topic_prefix = "rpm/"
client_id = "hub-0042-uplink"
protocol = "3.1.1"
keepalive_s = 45
ca_file = "/etc/vitalbridge/ca.pem"
client_cert = "/etc/vitalbridge/hub.pem"
client_key = "/etc/vitalbridge/hub.key"
username = "hub-0042"
password_file = "{password_file}"
window = 10

[ble]
backend = "simulators.bleak_backend"
backend_options = {{ hci_spec = "unix:/tmp/hci.sock" }}
adapter = "hci1"
max_connections = 4
connect_timeout_s = 15
session_timeout_s = 90
racp_timeout_s = 20
scan_silence_s = 60
power_cycle_adapter = true
backoff_base_s = 1
backoff_cap_s = 120

[outbox]
max_rows = 5000
max_bytes = 50000000
policy = "drop_oldest"

[logging]
level = "debug"
format = "json"

[[devices]]
id = "cuff-kitchen"
address = "aa:bb:cc:dd:ee:01"
profile = "blood_pressure"
name = "kitchen cuff"
pairing = "just_works"

[devices.patients]
1 = "pat-0001"
2 = "pat-0002"

[devices.consent_codes]
1 = 1234

[[devices]]
id = "oximeter"
address = "AA:BB:CC:DD:EE:02"
profile = "pulse_oximeter"
patient = "pat-0003"
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No override from the developer's shell, and a known system zone."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TZ", "UTC")


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def device_toml(**fields: object) -> str:
    """One [[devices]] block after MINIMAL; tables are given as TOML inline-table text."""
    lines = ["", "[[devices]]"]
    values = {"id": "cuff", "address": "AA:BB:CC:DD:EE:01", "profile": "blood_pressure"} | fields
    for key, value in values.items():
        raw = isinstance(value, str) and value.startswith("{")
        lines.append(f"{key} = {value if raw else json.dumps(value)}")
    return "\n".join(lines) + "\n"


# --- a good file ------------------------------------------------------------------------------


def test_full_file_loads_every_section(tmp_path: Path) -> None:
    password_file = write(tmp_path, "s3cret\n", "password")
    config = load_config(write(tmp_path, FULL.format(password_file=password_file)))

    assert config.hub_id == "hub-0042"
    assert config.state_dir == Path("/srv/vitalbridge")
    assert config.zone().key == "Europe/London"
    assert config.status_interval_s == 30.0

    mqtt = config.mqtt
    assert mqtt.hub_id == "hub-0042"  # taken from the top level
    assert mqtt.endpoint.host == "broker.example"
    assert mqtt.endpoint.port == 8883
    assert mqtt.endpoint.tls
    assert mqtt.topics.status == "rpm/hubs/hub-0042/status"
    assert mqtt.effective_client_id == "hub-0042-uplink"
    assert mqtt.protocol == "3.1.1"
    assert mqtt.keepalive_s == 45
    assert mqtt.ca_file == Path("/etc/vitalbridge/ca.pem")
    assert mqtt.client_cert == Path("/etc/vitalbridge/hub.pem")
    assert mqtt.client_key == Path("/etc/vitalbridge/hub.key")
    assert mqtt.username == "hub-0042"
    assert mqtt.window == 10
    assert mqtt.read_password() == "s3cret"  # the secret lives in its own file

    ble = config.ble
    assert ble.backend == "simulators.bleak_backend"
    assert ble.backend_options == {"hci_spec": "unix:/tmp/hci.sock"}
    assert ble.adapter == "hci1"
    assert ble.max_connections == 4
    assert (ble.connect_timeout_s, ble.session_timeout_s, ble.racp_timeout_s) == (15, 90, 20)
    assert ble.scan_silence_s == 60
    assert ble.power_cycle_adapter
    assert (ble.backoff_base_s, ble.backoff_cap_s) == (1, 120)

    assert config.outbox.max_rows == 5000
    assert config.outbox.max_bytes == 50_000_000
    assert config.outbox.policy is OutboxPolicy.DROP_OLDEST
    assert config.logging.level == "debug"
    assert config.logging.format == "json"

    cuff, oximeter = config.devices
    assert cuff.id == "cuff-kitchen"
    assert cuff.address == "AA:BB:CC:DD:EE:01"  # normalised to upper case
    assert cuff.profile is DeviceProfile.BLOOD_PRESSURE
    assert cuff.name == "kitchen cuff"
    assert cuff.pairing is PairingMethod.JUST_WORKS
    assert cuff.patients == {1: "pat-0001", 2: "pat-0002"}
    assert cuff.consent_codes == {1: 1234}
    assert cuff.patient_map() == {1: "pat-0001", 2: "pat-0002"}
    assert oximeter.profile is DeviceProfile.PULSE_OXIMETER
    assert oximeter.pairing is PairingMethod.NONE
    assert oximeter.patient_map() == {None: "pat-0003"}
    assert config.device("oximeter") is oximeter
    assert config.device("scale") is None


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    assert config.state_dir == DEFAULT_STATE_DIR == Path("/var/lib/vitalbridge")
    assert config.timezone is None
    assert config.zone().key == "UTC"  # the system zone (TZ here)
    assert config.devices == ()
    assert config.status_interval_s == 60.0
    assert config.mqtt.protocol == "5"
    assert config.mqtt.topic_prefix == ""
    assert config.mqtt.effective_client_id == "vitalbridge-hub-0042"
    assert config.mqtt.read_password() is None
    assert config.ble.backend == "bleak"
    assert config.ble.adapter is None
    assert config.ble.max_connections == 3
    assert config.ble.connect_timeout_s == 20.0
    assert config.ble.session_timeout_s == 120.0
    assert config.outbox.max_rows == DEFAULT_MAX_ROWS
    assert config.outbox.max_bytes == DEFAULT_MAX_BYTES
    assert config.outbox.policy is OutboxPolicy.REFUSE_NEW
    assert config.logging.level == "info"
    assert config.logging.format == "auto"


def test_the_system_zone_is_used_when_timezone_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", ":Europe/Paris")
    assert load_config(write(tmp_path, MINIMAL)).zone().key == "Europe/Paris"


def test_an_unusable_system_zone_asks_for_timezone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Nowhere/Atlantis")
    path = write(tmp_path, MINIMAL)
    message = load_error(path)
    assert str(path) in message
    assert "timezone:" in message
    assert "TZ" in message
    assert "set timezone" in message


def test_the_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        config.hub_id = "other"


# --- environment overrides --------------------------------------------------------------------


def test_environment_overrides_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, MINIMAL + "\n[ble]\nmax_connections = 2\nadapter = 'hci0'\n")
    monkeypatch.setenv("VITALBRIDGE_HUB_ID", "hub-9000")
    monkeypatch.setenv("VITALBRIDGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VITALBRIDGE_TIMEZONE", "America/New_York")
    monkeypatch.setenv("VITALBRIDGE_MQTT__BROKER_URL", "mqtts://uplink.example:8884")
    monkeypatch.setenv("VITALBRIDGE_BLE__MAX_CONNECTIONS", "5")

    config = load_config(path)

    assert config.hub_id == "hub-9000"
    assert config.mqtt.hub_id == "hub-9000"  # the override reaches the topics too
    assert config.mqtt.topics.status == "hubs/hub-9000/status"
    assert config.state_dir == tmp_path / "state"
    assert config.zone().key == "America/New_York"
    assert str(config.mqtt.endpoint) == "mqtts://uplink.example:8884"
    assert config.ble.max_connections == 5
    assert config.ble.adapter == "hci0"  # the rest of the section still comes from the file


def test_a_section_can_come_from_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'hub_id = "hub-0042"\n')
    monkeypatch.setenv("VITALBRIDGE_MQTT__BROKER_URL", "mqtt://127.0.0.1:18830")
    monkeypatch.setenv(
        "VITALBRIDGE_DEVICES",
        json.dumps([{"id": "scale", "address": "AA:BB:CC:DD:EE:03", "profile": "weight_scale"}]),
    )
    config = load_config(path)
    assert config.mqtt.hub_id == "hub-0042"
    assert [device.id for device in config.devices] == ["scale"]


@pytest.mark.parametrize("name", ["VITALBRIDGE_UNKNOWN", "VITALBRIDGE_BUMBLE_HCI"])
def test_variables_that_name_no_setting_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # They belong to other parts of the system (the simulated radio reads VITALBRIDGE_BUMBLE_HCI).
    monkeypatch.setenv(name, "1")
    config = load_config(write(tmp_path, MINIMAL))
    assert config == load_config(write(tmp_path, MINIMAL, "again.toml"))
    assert "unknown" not in config.model_dump()
    assert "bumble_hci" not in config.model_dump()


def test_an_unknown_field_in_a_section_variable_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALBRIDGE_BLE__MAX_CONECTIONS", "5")
    path = write(tmp_path, MINIMAL)
    message = load_error(path)
    assert str(path) in message
    assert "ble.max_conections" in message
    assert "VITALBRIDGE_BLE__MAX_CONECTIONS" in message
    assert "spelling" in message


def test_a_bad_override_value_names_the_variable_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALBRIDGE_BLE__MAX_CONNECTIONS", "ninety-nine")
    path = write(tmp_path, MINIMAL)
    message = load_error(path)
    assert "ble.max_connections" in message
    assert "VITALBRIDGE_BLE__MAX_CONNECTIONS" in message
    assert "ninety-nine" not in message


def test_a_section_variable_that_is_not_json_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALBRIDGE_BLE", "{max_connections: hunter2")
    path = write(tmp_path, MINIMAL)
    message = load_error(path)
    assert str(path) in message
    assert "VITALBRIDGE_BLE" in message
    assert "JSON" in message
    assert "hunter2" not in message


# --- a bad file -------------------------------------------------------------------------------


def test_a_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    message = load_error(path)
    assert str(path) in message
    assert "does not exist" in message
    assert "--config" in message


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    # A directory in the file's place: unreadable even for root, unlike a chmod 000 file.
    path = tmp_path / "config.toml"
    path.mkdir()
    message = load_error(path)
    assert str(path) in message
    assert "cannot read" in message


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'hub_id = "hub-\xff"\n')
    message = load_error(path)
    assert str(path) in message
    assert "UTF-8" in message


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'hub_id = "hub-0042"\n\n[mqtt]\nbroker_url = mqtt://x\n')
    message = load_error(path)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 4" in message


BAD_FILES = {
    "typo": (
        MINIMAL + "\n[ble]\nmax_conection = 3\n",
        "ble.max_conection",
        ["remove it", "check the spelling"],
    ),
    "top-level typo": (
        "hubid = 'x'\n" + MINIMAL,
        "hubid",
        ["remove it", "check the spelling"],
    ),
    "wrong type": (
        MINIMAL + "\n[ble]\nmax_connections = 'three'\n",
        "ble.max_connections",
        ["whole number"],
    ),
    "out of range": (
        MINIMAL + "\n[ble]\nmax_connections = 50\n",
        "ble.max_connections",
        ["less than or equal to 10"],
    ),
    "wrong type for a section": (
        "logging = 'debug'\n" + MINIMAL,
        "logging",
        ["table"],
    ),
    "bad profile": (
        MINIMAL + device_toml(profile="blood-pressure"),
        "devices.0.profile",
        [f"'{profile.value}'" for profile in DeviceProfile],
    ),
    "bad pairing": (
        MINIMAL + device_toml(pairing="pin"),
        "devices.0.pairing",
        ["'none'", "'just_works'", "'passkey'"],
    ),
    "bad log level": (
        MINIMAL + "\n[logging]\nlevel = 'verbose'\n",
        "logging.level",
        ["'debug'", "'info'", "'warning'", "'error'", "one of these"],
    ),
    "bad outbox policy": (
        MINIMAL + "\n[outbox]\npolicy = 'keep'\n",
        "outbox.policy",
        ["'refuse_new'", "'drop_oldest'"],
    ),
    "bad protocol": (
        MINIMAL + "protocol = '4'\n",
        "mqtt.protocol",
        ["'5'", "'3.1.1'"],
    ),
    "duplicate device id": (
        MINIMAL + device_toml() + device_toml(address="AA:BB:CC:DD:EE:02"),
        "devices",
        ["devices.1.id", "devices.0.id", "its own id"],
    ),
    "duplicate address, other case": (
        MINIMAL + device_toml() + device_toml(id="cuff-2", address="aa:bb:cc:dd:ee:01"),
        "devices",
        ["devices.1.address", "devices.0.address", "once"],
    ),
    "consent code without a patient": (
        MINIMAL + device_toml(patients="{ 1 = 'pat-1' }", consent_codes="{ 2 = 1234 }"),
        "devices.0.consent_codes",
        ["user index [2]", "no entry in patients"],
    ),
    "consent code out of range": (
        MINIMAL + device_toml(patients="{ 1 = 'pat-1' }", consent_codes="{ 1 = 10000 }"),
        "devices.0.consent_codes.1",
        ["9999"],
    ),
    "user index 255": (
        MINIMAL + device_toml(patients="{ 255 = 'pat-1' }"),
        "devices.0.patients",
        ["user index 255", "0-254"],
    ),
    "user index not a number": (
        MINIMAL + device_toml(patients="{ first = 'pat-1' }"),
        "devices.0.patients.first (as a key)",
        ["whole number"],
    ),
    "bad address": (
        MINIMAL + device_toml(address="AA-BB-CC-DD-EE-01"),
        "devices.0.address",
        ["AA:BB:CC:DD:EE:FF"],
    ),
    "bad device id": (
        MINIMAL + device_toml(id="kitchen cuff"),
        "devices.0.id",
        ["letters, digits"],
    ),
    "bad time zone": (
        "timezone = 'Mars/Olympus_Mons'\n" + MINIMAL,
        "timezone",
        ["IANA", "Europe/London"],
    ),
    "tls options on mqtt://": (
        MINIMAL + "ca_file = '/etc/vitalbridge/ca.pem'\n",
        "mqtt",
        ["mqtts://", "remove them"],
    ),
    "missing hub_id": (
        '[mqtt]\nbroker_url = "mqtt://127.0.0.1"\n',
        "hub_id",
        ["1 problem", "add hub_id"],
    ),
    "bad hub_id reported once": (
        MINIMAL.replace("hub-0042", "hub/0042"),
        "hub_id",
        ["1 problem", "letters, digits"],
    ),
    "missing mqtt": (
        'hub_id = "hub-0042"\n',
        "mqtt",
        ["[mqtt]", "broker_url"],
    ),
    "mqtt.hub_id differs": (
        MINIMAL + "hub_id = 'hub-0043'\n",
        "(top level)",
        ["mqtt.hub_id", "remove mqtt.hub_id"],
    ),
    "password in the file": (
        MINIMAL + "password = 'hunter2'\n",
        "mqtt.password",
        ["password_file", "password_env"],
    ),
}


@pytest.mark.parametrize(("text", "where", "expected"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_names_the_file_the_field_and_the_fix(
    tmp_path: Path, text: str, where: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert f"  {where}: " in message
    for fragment in expected:
        assert fragment in message


# --- no values in messages ------------------------------------------------------------------

PATIENT_REF = "pat-SENTINEL-7f3a9c"
LEAK_CANARY = "hunter2-SENTINEL-b41d"


LEAKY_FILES = {
    # Patient references next to a mistake elsewhere, and in mistakes of their own.
    "ref beside a bad profile": device_toml(patients=f"{{ 1 = '{PATIENT_REF}' }}", profile="cuff"),
    "ref at user 255": device_toml(patients=f"{{ 255 = '{PATIENT_REF}' }}"),
    "ref with a space": device_toml(patients=f"{{ 1 = '{PATIENT_REF} smith' }}"),
    "ref under a bad index": device_toml(patients=f"{{ x = '{PATIENT_REF}' }}"),
    "ref as a device id": device_toml(patient=PATIENT_REF, id=PATIENT_REF + " "),
    "ref with a slash": device_toml(patient=f"{PATIENT_REF}/x"),
    "ref instead of a table": device_toml(patients=f"'{PATIENT_REF}'"),
    "ref under a typo": device_toml(patient_ref=PATIENT_REF),
    "ref beside a consent code": device_toml(
        patients=f"{{ 1 = '{PATIENT_REF}' }}", consent_codes="{ 2 = 1 }"
    ),
}
LEAKY_MQTT = {
    # A password where it does not belong.
    "password field": MINIMAL + f"password = '{LEAK_CANARY}'\n",
    "both password sources": MINIMAL
    + f"username = 'hub'\npassword_env = '{LEAK_CANARY}'\npassword_file = '/p'\n",
    "password in a bad scheme": MINIMAL.replace("mqtt://", f"http://hub:{LEAK_CANARY}@"),
    "password in the url": MINIMAL.replace(
        "mqtt://127.0.0.1:18830", f"mqtt://hub:{LEAK_CANARY}@127.0.0.1"
    ),
    "password in a url with a bad port": MINIMAL.replace(
        "mqtt://127.0.0.1:18830", f"mqtt://hub:{LEAK_CANARY}@127.0.0.1:x"
    ),
    "password as keepalive": MINIMAL + f"keepalive_s = '{LEAK_CANARY}'\n",
}
LEAKY = {name: MINIMAL + text for name, text in LEAKY_FILES.items()} | LEAKY_MQTT


@pytest.mark.parametrize("text", LEAKY.values(), ids=LEAKY.keys())
def test_messages_quote_fields_never_patient_references_or_passwords(
    tmp_path: Path, text: str
) -> None:
    message = load_error(write(tmp_path, text))
    assert "SENTINEL" not in message


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reference=st.from_regex(r"\AZq7[A-Za-z0-9._:/ -]{12,40}\Z"),
    user_index=st.integers(min_value=-3, max_value=300),
    mistake=st.sampled_from(["profile = 'x'", "pairing = 1", "bogus = 2", "name = 3", ""]),
)
def test_no_patient_reference_in_any_message(reference: str, user_index: int, mistake: str) -> None:
    data = {
        "hub_id": "hub-0042",
        "mqtt": {"broker_url": "mqtt://127.0.0.1"},
        "devices": [
            {
                "id": "cuff",
                "address": "AA:BB:CC:DD:EE:01",
                "profile": "blood_pressure",
                "patients": {user_index: reference},
                "patient": reference,
                "consent_codes": {user_index + 1: 1},
            }
        ],
    }
    if mistake:
        key, _, value = mistake.partition(" = ")
        data["devices"][0][key] = value.strip("'") if value.startswith("'") else int(value)
    try:
        config_from_mapping(data, source="/etc/vitalbridge/config.toml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("/etc/vitalbridge/config.toml: ")
        assert reference not in message
        assert "devices.0." in message or "devices:" in message
    else:
        pytest.fail("consent_codes has an index that patients lacks; the config must be refused")


# --- the redacted dump ----------------------------------------------------------------------


def test_dump_redacted_keeps_settings_and_drops_patient_references(tmp_path: Path) -> None:
    password_file = write(tmp_path, f"{LEAK_CANARY}\n", "password")
    config = load_config(write(tmp_path, FULL.format(password_file=password_file)))

    dumped = dump_redacted(config)
    text = json.dumps(dumped)  # JSON-able as it is

    for reference in ("pat-0001", "pat-0002", "pat-0003"):
        assert reference not in text
    assert "1234" not in text  # the consent code
    assert LEAK_CANARY not in text
    cuff, oximeter = dumped["devices"]
    assert cuff["patients"] == {"count": 2, "user_indexes": [1, 2]}
    assert cuff["patient"] is None
    assert cuff["consent_codes"] == {"count": 1, "user_indexes": [1]}
    assert cuff["address"] == "AA:BB:CC:DD:EE:01"
    assert cuff["profile"] == "blood_pressure"
    assert oximeter["patients"] == {"count": 0, "user_indexes": []}
    assert oximeter["patient"] == "<redacted>"
    # Everything else is the effective configuration, unchanged.
    full = config.model_dump(mode="json")
    for section in ("hub_id", "mqtt", "ble", "outbox", "logging", "state_dir", "timezone"):
        assert dumped[section] == full[section]
    assert dumped["mqtt"]["password_file"] == str(password_file)


def test_dump_redacted_shows_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALBRIDGE_BLE__MAX_CONNECTIONS", "5")
    dumped = dump_redacted(load_config(write(tmp_path, MINIMAL)))
    assert dumped["ble"]["max_connections"] == 5
    assert dumped["devices"] == []
