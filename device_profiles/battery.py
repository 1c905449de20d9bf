"""Placeholder: the battery codecs are being written; nothing is registered yet."""

from __future__ import annotations

CHARACTERISTICS: tuple[type, ...] = ()
