"""Properties every registered codec must have: round trip, total decode, observed quantities."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import device_profiles
from device_profiles import CHARACTERISTICS, CODES, DecodeError, Number, Quantity

_STRATEGY_MODULES = sorted(p.stem for p in Path(__file__).parent.glob("strategies_*.py"))
STRATEGIES: dict[type, st.SearchStrategy] = {}
for _name in _STRATEGY_MODULES:
    STRATEGIES.update(importlib.import_module(_name).STRATEGIES)

CODEC_IDS = [f"{uuid:04X}-{cls.__name__}" for uuid, cls in CHARACTERISTICS.items()]
CODECS = list(CHARACTERISTICS.values())


def test_every_registered_characteristic_has_a_strategy():
    missing = [cls.__name__ for cls in CODECS if cls not in STRATEGIES]
    assert missing == []


def test_every_strategy_is_for_a_registered_characteristic():
    registered = set(CODECS)
    assert [cls.__name__ for cls in STRATEGIES if cls not in registered] == []


@pytest.mark.parametrize("cls", CODECS, ids=CODEC_IDS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_then_decode_returns_the_same_value(cls, data):
    result = data.draw(STRATEGIES[cls])
    wire = result.encode()
    assert cls.decode(wire) == result
    assert device_profiles.decode(cls.UUID, wire) == result
    json.dumps(device_profiles.as_dict(result))


@pytest.mark.parametrize("cls", CODECS, ids=CODEC_IDS)
@settings(max_examples=300)
@given(payload=st.binary(max_size=64))
def test_any_bytes_decode_to_a_result_or_a_decode_error(cls, payload):
    try:
        result = device_profiles.decode(cls.UUID, payload)
    except DecodeError as exc:
        assert exc.field
        assert 0 <= exc.offset <= len(payload)
        assert exc.characteristic
    else:
        assert isinstance(result, cls)
        json.dumps(device_profiles.as_dict(result))


def _number_fields(value: object, path: str = "") -> set[str]:
    """Paths of every Number present in a result (tuple members count under the tuple's name)."""
    found: set[str] = set()
    if isinstance(value, Number):
        found.add(path)
    elif isinstance(value, tuple):
        for item in value:
            found |= _number_fields(item, path)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            sub = f"{path}.{field.name}" if path else field.name
            found |= _number_fields(getattr(value, field.name), sub)
    return found


@pytest.mark.parametrize("cls", CODECS, ids=CODEC_IDS)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_numeric_field_is_an_observation_with_a_code(cls, data):
    result = data.draw(STRATEGIES[cls])
    numbers = _number_fields(result)
    observations = result.observations() if hasattr(result, "observations") else ()
    assert {o.field for o in observations} == numbers
    for observation in observations:
        assert observation.quantity in CODES
        assert isinstance(observation.value, Number)


def test_every_quantity_has_a_code_entry_in_its_canonical_unit():
    for quantity in Quantity:
        entry = CODES[quantity]
        assert entry.quantity is quantity
        assert device_profiles.units.CANONICAL[entry.ucum] is entry.ucum


# An empty utf8s is a valid Device Information string, and the regulatory list is opaque
# vendor data kept raw; every other characteristic has at least one mandatory field.
EMPTY_IS_A_VALUE = {0x2A24, 0x2A25, 0x2A26, 0x2A27, 0x2A28, 0x2A29, 0x2A2A}


@pytest.mark.parametrize("cls", CODECS, ids=CODEC_IDS)
def test_empty_payload_is_an_empty_error(cls):
    if cls.UUID in EMPTY_IS_A_VALUE:
        assert cls.decode(b"").encode() == b""
        return
    with pytest.raises(DecodeError) as info:
        cls.decode(b"")
    assert info.value.kind == "empty"
    assert info.value.offset == 0
