"""Placeholder: the heart_rate codecs are being written; nothing is registered yet."""

from __future__ import annotations

CHARACTERISTICS: tuple[type, ...] = ()
