"""Hypothesis strategies for the Date Time codec."""

from __future__ import annotations

from strategies import date_times

from device_profiles import DateTime

STRATEGIES = {DateTime: date_times}
