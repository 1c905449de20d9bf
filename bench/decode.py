"""Decode speed of device_profiles against the bluetooth-sig library on the same payloads.

Prints a table and writes bench/results/decode.json. Each figure is the median over several
repeats of the time per decode, both libraries measured in this same run, on this machine. The
"ours correct / theirs correct" columns compare each library's main value with the value the
spec tables give for the payload, so a fast wrong answer is visible as such.

Run: make bench (installs the `bench` extra), or .venv/bin/python bench/decode.py [--quick].
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import timeit
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import device_profiles
from device_profiles.ieee11073 import _build_sfloat, decode_sfloat

if TYPE_CHECKING:
    from collections.abc import Callable

RESULTS = Path(__file__).resolve().parent / "results" / "decode.json"


class Case(NamedTuple):
    """One payload: the characteristic, the bytes, and the value the spec says they carry."""

    uuid: str
    hex: str
    ours: Callable[[Any], Decimal | None] | None = None
    theirs: Callable[[Any], Any] | None = None
    expected: Decimal | None = None


def _num(path: str) -> Callable[[Any], Decimal | None]:
    """Read a Number at a dotted attribute path of one of our results."""

    def get(result: object) -> Decimal | None:
        value: Any = result
        for part in path.split("."):
            value = getattr(value, part)
        return value.value  # type: ignore[no-any-return]

    return get


def _attr(name: str) -> Callable[[Any], Any]:
    """Read an attribute of a bluetooth-sig result."""
    return lambda result: getattr(result, name)


TIME = "e807030507301e"  # 2024-03-05 07:48:30
CASES = [
    # 120/80/93 mmHg, time stamp, pulse 72, user 1, irregular pulse.
    Case(
        "2A35",
        "1e780050005d00" + TIME + "4800010400",
        _num("systolic"),
        _attr("systolic"),
        Decimal(120),
    ),
    # 150 mmHg during inflation, pulse 72; diastolic and MAP NaN.
    Case(
        "2A36",
        "049600ff07ff074800",
        _num("cuff_pressure"),
        _attr("current_cuff_pressure"),
        Decimal(150),
    ),
    Case("2A49", "3f00"),
    Case(
        "2B34",
        "1e780050005d00" + "80510100" + "4800010400",
        _num("systolic"),
        _attr("systolic"),
        Decimal(120),
    ),
    Case("2B35", "0e9600" + "80510100" + "480001", _num("cuff_pressure"), None, Decimal(150)),
    # SpO2 98 %, PR 72 /min, time stamp.
    Case(
        "2A5E", "01" + "62004800" + TIME, _num("spo2pr_spot_check.spo2"), _attr("spo2"), Decimal(98)
    ),
    # Normal 98/72, Fast 99/73, Slow 97/71, PAI 1.0 %.
    Case(
        "2A5F",
        "13" + "62004800" + "63004900" + "61004700" + "0af0",
        _num("spo2pr_normal.spo2"),
        _attr("spo2"),
        Decimal(98),
    ),
    Case("2A60", "0300" + "e0ff" + "ffff00"),
    # 70 kg (14000 x 0.005), time stamp, user 1, BMI 24.5, height 1.765 m.
    Case(
        "2A9D",
        "0e" + "b036" + TIME + "01" + "f500" + "e506",
        _num("weight"),
        _attr("weight"),
        Decimal(70),
    ),
    Case("2A9E", "8f010000"),
    # Body fat 25.0 %, time stamp, user 1, basal metabolism 6000 kJ, impedance 500.0 Ohm.
    Case(
        "2A9C",
        "0e02" + "fa00" + TIME + "01" + "7017" + "8813",
        _num("body_fat_percentage"),
        _attr("body_fat_percentage"),
        Decimal(25),
    ),
    Case("2A9B", "ff010000"),
    # 36.5 Cel FLOAT, time stamp, body (general).
    Case(
        "2A1C",
        "06" + "6d0100ff" + TIME + "02",
        _num("temperature_measurement_value"),
        _attr("temperature"),
        Decimal("36.5"),
    ),
    Case(
        "2A1E",
        "00" + "6d0100ff",
        _num("intermediate_temperature"),
        _attr("temperature"),
        Decimal("36.5"),
    ),
    Case("2A1D", "02"),
    Case("2A21", "3c00"),
    # Sequence 1, base time, offset 0, 95e-5 kg/L (= 95 mg/dL), capillary whole blood, finger.
    Case(
        "2A18",
        "03" + "0100" + TIME + "0000" + "5fb0" + "11",
        _num("glucose_concentration"),
        lambda r: Decimal(str(r.glucose_concentration)) / 100000,
        Decimal("0.00095"),
    ),
    Case("2A34", "02" + "0100" + "01"),
    Case("2A51", "ff07"),
    # 72 bpm, contact detected, one RR interval of 1024/1024 s.
    Case(
        "2A37",
        "16" + "48" + "0004",
        _num("heart_rate_measurement_value"),
        _attr("heart_rate"),
        Decimal(72),
    ),
    Case("2A38", "01"),
    Case("2A52", "06000101"),
    Case("2A2B", TIME + "020000"),
    Case("2A0F", "0400"),
    Case("2A08", TIME),
    Case("2A29", "566974616c627269646765204d65646963616c"),
    Case("2A24", "42502d3230"),
    Case("2A25", "534e2d303030313233"),
    Case("2A26", "312e342e32"),
    Case("2A27", "7265762d42"),
    Case("2A28", "332e31"),
    Case("2A23", "0102030405060708"),
    Case("2A2A", "000100040001020304"),
    Case("2A50", "01590001000001"),
    Case("2A19", "5a", _num("battery_level"), lambda r: r, Decimal(90)),
    Case("2A9F", "20010100"),
    Case("2A9A", "01"),
    Case("2A99", "01000000"),
]


def median_us(call: Callable[[], object], budget_s: float, repeats: int) -> float:
    """Median microseconds per call over `repeats` timed loops of about budget_s/repeats each."""
    timer = timeit.Timer(call)
    number, elapsed = timer.autorange()
    per_repeat = budget_s / repeats
    number = max(1, int(number * per_repeat / max(elapsed, 1e-9)))
    times = timer.repeat(repeat=repeats, number=number)
    return statistics.median(times) / number * 1e6


def _close(value: object, expected: Decimal) -> bool:
    try:
        return abs(Decimal(str(value)) - expected) <= abs(expected) * Decimal("1e-9")
    except (ArithmeticError, ValueError, TypeError):
        return False


def _reference() -> tuple[Any, str] | None:
    try:
        import bluetooth_sig  # noqa: PLC0415 - optional, only in the bench extra
    except ImportError:
        return None
    return bluetooth_sig.BluetoothSIGTranslator(), bluetooth_sig.__version__


def run_cases(budget_s: float, repeats: int) -> list[dict[str, Any]]:
    """Measure every case with both libraries; return one row per case."""
    reference = _reference()
    rows = []
    for case in CASES:
        data = bytes.fromhex(case.hex)
        result = device_profiles.decode(case.uuid, data)
        ours_us = median_us(partial(device_profiles.decode, case.uuid, data), budget_s, repeats)
        row: dict[str, Any] = {
            "uuid": f"0x{case.uuid}",
            "characteristic": type(result).NAME,
            "payload": case.hex,
            "ours_us": round(ours_us, 3),
            "ours_correct": None,
            "theirs_us": None,
            "theirs_correct": None,
            "theirs_error": None,
            "ratio": None,
        }
        if case.ours is not None and case.expected is not None:
            row["ours_correct"] = case.ours(result) == case.expected
        if reference is not None:
            translator = reference[0]
            try:
                theirs = translator.parse_characteristic(case.uuid, data)
            except Exception as exc:  # the reference library raises many types
                row["theirs_error"] = f"{type(exc).__name__}: {str(exc)[:80]}"
            else:
                theirs_us = median_us(
                    partial(translator.parse_characteristic, case.uuid, data), budget_s, repeats
                )
                row["theirs_us"] = round(theirs_us, 3)
                row["ratio"] = round(theirs_us / ours_us, 1)
                if case.theirs is not None and case.expected is not None:
                    row["theirs_correct"] = _close(case.theirs(theirs), case.expected)
        rows.append(row)
    return rows


@dataclasses.dataclass(frozen=True, slots=True)
class _Frozen:
    a: object
    b: object
    c: object
    d: object
    e: object
    f: object
    g: object


@dataclasses.dataclass(slots=True)
class _Mutable:
    a: object
    b: object
    c: object
    d: object
    e: object
    f: object
    g: object


class _Tuple(NamedTuple):
    a: object
    b: object
    c: object
    d: object
    e: object
    f: object
    g: object


def run_representation(budget_s: float, repeats: int) -> list[dict[str, Any]]:
    """Cost of building a 7-field result in each candidate representation, and SFLOAT caching."""
    args = (1, 2, 3, None, None, None, ())
    rows = [
        ("frozen slotted dataclass (chosen)", lambda: _Frozen(*args)),
        ("mutable slotted dataclass", lambda: _Mutable(*args)),
        ("NamedTuple", lambda: _Tuple(*args)),
        ("SFLOAT word, cached (chosen)", lambda: decode_sfloat(0xF4B0)),
        ("SFLOAT word, rebuilt each time", lambda: _build_sfloat(0xF4B0)),
    ]
    return [
        {"what": name, "ns": round(median_us(call, budget_s, repeats) * 1000, 1)}
        for name, call in rows
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short loops (a smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    options = parser.parse_args(argv)
    budget_s, repeats = (0.02, 3) if options.quick else (0.35, 7)
    reference = _reference()
    rows = run_cases(budget_s, repeats)
    representation = run_representation(budget_s, repeats)

    print(
        f"{'UUID':7} {'characteristic':38} {'ours µs':>8} {'ok':>3} {'bt-sig µs':>10} "
        f"{'ok':>3} {'ratio':>6}"
    )
    for row in rows:
        theirs = (
            f"{row['theirs_us']:.2f}"
            if row["theirs_us"] is not None
            else "error"
            if row["theirs_error"]
            else "-"
        )
        ratio = f"{row['ratio']:.1f}x" if row["ratio"] is not None else "-"
        print(
            f"{row['uuid'][2:]:7} {row['characteristic'][:38]:38} {row['ours_us']:8.2f} "
            f"{_mark(row['ours_correct']):>3} {theirs:>10} {_mark(row['theirs_correct']):>3} "
            f"{ratio:>6}"
        )
    ratios = [row["ratio"] for row in rows if row["ratio"] is not None]
    if ratios:
        print(
            f"\nboth libraries decode {len(ratios)} payloads; speed-up min {min(ratios):.1f}x, "
            f"median {statistics.median(ratios):.1f}x; target >= 5x for each"
        )
    errors = [row for row in rows if row["theirs_error"]]
    for row in errors:
        print(f"bluetooth-sig failed on {row['uuid']}: {row['theirs_error']}")
    print("\nrepresentation (ns per construction):")
    for item in representation:
        print(f"  {item['what']:36} {item['ns']:8.1f}")

    output: Path = options.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "machine": platform.machine(),
                "processor_count": __import__("os").cpu_count(),
                "reference": f"bluetooth-sig {reference[1]}" if reference else None,
                "repeats": repeats,
                "budget_s": budget_s,
                "cases": rows,
                "representation": representation,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {output}")
    return 0


def _mark(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "NO"


if __name__ == "__main__":
    sys.exit(main())
