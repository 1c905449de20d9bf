"""Hypothesis strategies for the Battery codecs (used by the generic round-trip test)."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import fixed_numbers

from device_profiles import Scale
from device_profiles.battery import BatteryLevel

STRATEGIES = {BatteryLevel: st.builds(BatteryLevel, fixed_numbers(Scale(1, 0), 100))}
