"""Vendor quirks as data: what a device needs or does beyond its profile, keyed by DIS identity.

A hub reads Device Information (Manufacturer Name 0x2A29, Model Number 0x2A24 and Firmware
Revision 0x2A26), asks `quirks_for` what the device needs, and acts on the answer: it writes
Current Time before subscribing when `set_clock_first`, gives UDS consent before it waits for
readings when `consent_before_send`, and passes every decoded measurement through
`apply_quirks`, which turns a vendor's zero fill of an unmeasured field back into "absent".

Every rule names where the behaviour is documented. Real products are listed only where a public
source documents the behaviour itself; a driver that happens to do something first is not enough.
Investigated and not listed: the A&D Medical UA-651BLE cuff, whose public drivers write the time
before subscribing (https://github.com/obniz/obniz/blob/master/src/parts/Ble/UA651BLE/index.ts),
but to Date Time 0x2A08 in the Blood Pressure Service rather than Current Time, and no source
found says the cuff withholds its readings until then.

The simulated devices' fictional quirky models (manufacturer "Vitalbridge Simulated Devices",
models VB-BP-QCLOCK, VB-BP-QZERO, VB-WS-QCONSENT, ...) are listed so that tests and the demo
show each quirk against a simulator.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, cast

from device_profiles._errors import EncodeError
from device_profiles.ieee11073 import Number, SpecialValue

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "QUIRKS",
    "SIMULATOR_MANUFACTURER",
    "QuirkRule",
    "Quirks",
    "apply_quirks",
    "quirks_for",
]

T = TypeVar("T")

SIMULATOR_MANUFACTURER: Final = "Vitalbridge Simulated Devices"
"""The DIS Manufacturer Name String of every simulated device (simulators.devices)."""

# Tried in order for a mandatory field that cannot be absent: NaN is IEEE 11073's "not a
# number" (what 0x2A36 puts in its unused pressure fields); fixed-point fields of the Weight
# Scale and Body Composition profiles have only "measurement unsuccessful" (0xFFFF).
_ABSENT_SPECIALS: Final = (SpecialValue.NAN, SpecialValue.MEASUREMENT_UNSUCCESSFUL)


@dataclass(frozen=True, slots=True)
class Quirks:
    """What a device needs from the hub, and which of its values are not what they seem."""

    NONE: ClassVar[Quirks]
    """A well-behaved device: no quirks."""

    set_clock_first: bool = False
    """The device sends nothing until the hub writes Current Time (0x2A2B) on the link."""
    consent_before_send: bool = False
    """A multi-user scale that sends no reading at all, not even for the unknown user, until the
    hub gives User Data Service consent on the link."""
    zero_means_absent: frozenset[str] = frozenset()
    """Measurement field names the device fills with zero when it did not measure them."""
    source: str = ""
    """Where the behaviour is documented (a URL, or the simulator behaviour that shows it)."""

    @property
    def any(self) -> bool:
        """Whether the device has any quirk at all."""
        return self.set_clock_first or self.consent_before_send or bool(self.zero_means_absent)

    def merge(self, other: Quirks) -> Quirks:
        """Return the quirks of a device both `self` and `other` describe."""
        # Sources are kept once each, in the order the rules name them.
        sources = [part for source in (self.source, other.source) for part in source.split("; ")]
        return Quirks(
            set_clock_first=self.set_clock_first or other.set_clock_first,
            consent_before_send=self.consent_before_send or other.consent_before_send,
            zero_means_absent=self.zero_means_absent | other.zero_means_absent,
            source="; ".join(dict.fromkeys(part for part in sources if part)),
        )


Quirks.NONE = Quirks()


def _text(value: str | None) -> str:
    """Normalise a DIS string for matching: trimmed and case-folded; unknown is empty."""
    return (value or "").strip().casefold()


@dataclass(frozen=True, slots=True)
class QuirkRule:
    """One entry of the quirk table: which devices (by DIS identity) have which quirks.

    `manufacturer` must equal the DIS Manufacturer Name (ignoring case and surrounding spaces);
    `model` and `firmware` are fnmatch-style globs over the Model Number and Firmware Revision
    (ignoring case). A rule without `firmware` holds for every firmware, known or not; one with a
    firmware glob needs the device's firmware to be known and to match.
    """

    manufacturer: str
    model: str
    quirks: Quirks
    firmware: str | None = None

    def matches(self, manufacturer: str | None, model: str | None, firmware: str | None) -> bool:
        """Whether a device with this DIS identity has the rule's quirks."""
        if _text(manufacturer) != _text(self.manufacturer):
            return False
        if not fnmatch.fnmatchcase(_text(model), _text(self.model)):
            return False
        if self.firmware is None:
            return True
        return firmware is not None and fnmatch.fnmatchcase(_text(firmware), _text(self.firmware))


_SIMULATED: Final = "simulators.devices.Behaviours.{} (fictional model, simulated)"

QUIRKS: Final[tuple[QuirkRule, ...]] = (
    QuirkRule(
        SIMULATOR_MANUFACTURER,
        "VB-*-QCLOCK*",
        Quirks(set_clock_first=True, source=_SIMULATED.format("requires_clock_set")),
    ),
    QuirkRule(
        SIMULATOR_MANUFACTURER,
        "VB-BP-*QZERO*",
        Quirks(
            zero_means_absent=frozenset({"mean_arterial_pressure", "pulse_rate"}),
            source=_SIMULATED.format("zero_fills_absent_fields"),
        ),
    ),
    QuirkRule(
        SIMULATOR_MANUFACTURER,
        "VB-*-QCONSENT*",
        Quirks(consent_before_send=True, source=_SIMULATED.format("consent_required_to_send")),
    ),
)
"""Every known quirk, by DIS identity; `quirks_for` merges all the rules a device matches."""


def quirks_for(
    manufacturer: str | None,
    model: str | None,
    firmware: str | None = None,
    *,
    table: Iterable[QuirkRule] = QUIRKS,
) -> Quirks:
    """Return the merged quirks of every rule matching this DIS identity, else `Quirks.NONE`."""
    found = Quirks.NONE
    for rule in table:
        if rule.matches(manufacturer, model, firmware):
            found = found.merge(rule.quirks)
    return found


def _is_zero(value: object) -> bool:
    return isinstance(value, Number) and value.special is None and value.mantissa == 0


def _encodes(candidate: object) -> bool:
    """Whether a changed measurement can still be put on the air by its codec."""
    encode = getattr(candidate, "encode", None)
    if encode is None:
        return True
    try:
        encode()
    except EncodeError:
        return False
    return True


def apply_quirks(measurement: T, quirks: Quirks) -> T:
    """Return `measurement` with the device's zero fills made absent, each with a warning.

    A named field holding a numeric zero becomes None when the field is optional (the codec then
    leaves out its present flag when encoding), or NaN when the profile makes it mandatory (Blood
    Pressure's mean arterial pressure), since a mandatory field cannot be left out: the encoded
    value keeps its layout and says "not a number". A mandatory field whose wire format has no NaN
    takes "measurement unsuccessful"; one with neither is kept, with a warning. Fields the
    measurement lacks, non-zero values and special values are left alone, so applying twice
    changes nothing more. The same object comes back when nothing applies.
    """
    if not quirks.zero_means_absent or not dataclasses.is_dataclass(measurement):
        return measurement
    fields = {field.name: field for field in dataclasses.fields(measurement)}
    result: Any = measurement
    warnings: list[str] = []
    for name in sorted(quirks.zero_means_absent & fields.keys()):
        if not _is_zero(getattr(result, name)):
            continue
        if fields[name].default is None:
            result = dataclasses.replace(result, **{name: None})
            warnings.append(f"{name}: a zero the device sends when it did not measure; dropped")
            continue
        for special in _ABSENT_SPECIALS:
            candidate = dataclasses.replace(result, **{name: Number.special_value(special)})
            if _encodes(candidate):
                result = candidate
                warnings.append(
                    f"{name}: a zero the device sends when it did not measure; "
                    f"mandatory, so reported as {special.value}"
                )
                break
        else:
            warnings.append(
                f"{name}: a zero the device sends when it did not measure; kept, since the "
                "field is mandatory and its format has no value for 'not measured'"
            )
    if "warnings" in fields:
        # A kept zero is seen again on a second pass; its warning is not repeated.
        new = [warning for warning in warnings if warning not in result.warnings]
        if new:
            result = dataclasses.replace(result, warnings=(*result.warnings, *new))
    return cast("T", result)
