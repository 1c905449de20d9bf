"""Plausible readings: patient profiles (normal, hypertensive, COPD, ...) and a seeded generator.

A `PatientProfile` holds a person's typical values and their spread; `Physiology` draws readings
from it with a `random.Random` the device owns, so the same seed gives the same readings. Values
that move together in people move together here: diastolic follows systolic, the pulse rises as
SpO2 falls, and body composition follows from weight and body fat. Readings are plain numbers; the
devices turn them into `device_profiles` values at their own resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

__all__ = [
    "ATHLETE",
    "COPD",
    "DIABETIC",
    "ELDERLY_ATRIAL_FIBRILLATION",
    "HYPERTENSIVE",
    "NORMAL",
    "PROFILES",
    "BloodPressureReading",
    "BodyReading",
    "HeartRateReading",
    "OximetryReading",
    "PatientProfile",
    "Physiology",
]

_KCAL_TO_KJ: Final = 4.184
_TENTH: Final = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class PatientProfile:
    """A person's typical values and how much they vary from one measurement to the next."""

    name: str
    age_years: int
    sex: Literal["female", "male"]
    height_m: float
    weight_kg: float
    body_fat_percent: float
    systolic_mmhg: float
    diastolic_mmhg: float
    blood_pressure_sd_mmhg: float = 7.0
    heart_rate_bpm: float = 70.0
    heart_rate_sd_bpm: float = 5.0
    irregular_pulse_rate: float = 0.0
    """The share of measurements with an irregular pulse (atrial fibrillation, ectopic beats)."""
    spo2_percent: float = 97.5
    spo2_sd_percent: float = 0.8
    perfusion_index_percent: float = 4.0
    temperature_c: float = 36.8
    temperature_sd_c: float = 0.2
    glucose_fasting_mg_dl: float = 90.0
    glucose_sd_mg_dl: float = 8.0
    glucose_postprandial_rise_mg_dl: float = 30.0

    def __post_init__(self) -> None:
        if not self.systolic_mmhg > self.diastolic_mmhg:
            raise ValueError(f"{self.name}: systolic must be above diastolic")
        if not 0.0 <= self.irregular_pulse_rate <= 1.0:
            raise ValueError(f"{self.name}: irregular_pulse_rate must be within 0..1")
        if not 0 < self.body_fat_percent < 75:  # noqa: PLR2004 - a plausible body fat share
            raise ValueError(f"{self.name}: body_fat_percent must be within 0..75")

    @property
    def bmi(self) -> float:
        """Body mass index at the profile's usual weight."""
        return self.weight_kg / self.height_m**2


NORMAL: Final = PatientProfile(
    "normal", 45, "female", 1.68, 66.0, 28.0, 118.0, 76.0, heart_rate_bpm=68.0
)
HYPERTENSIVE: Final = PatientProfile(
    "hypertensive",
    62,
    "male",
    1.76,
    89.0,
    29.0,
    156.0,
    96.0,
    blood_pressure_sd_mmhg=10.0,
    heart_rate_bpm=76.0,
    spo2_percent=96.5,
    perfusion_index_percent=2.5,
    glucose_fasting_mg_dl=102.0,
    glucose_sd_mg_dl=10.0,
    glucose_postprandial_rise_mg_dl=40.0,
)
COPD: Final = PatientProfile(
    "copd",
    71,
    "male",
    1.72,
    68.0,
    24.0,
    134.0,
    82.0,
    heart_rate_bpm=88.0,
    heart_rate_sd_bpm=6.0,
    spo2_percent=90.5,
    spo2_sd_percent=1.8,
    perfusion_index_percent=1.2,
    temperature_c=36.7,
    glucose_fasting_mg_dl=98.0,
)
DIABETIC: Final = PatientProfile(
    "diabetic",
    58,
    "female",
    1.63,
    94.0,
    41.0,
    138.0,
    86.0,
    heart_rate_bpm=78.0,
    spo2_percent=96.5,
    perfusion_index_percent=2.8,
    glucose_fasting_mg_dl=155.0,
    glucose_sd_mg_dl=35.0,
    glucose_postprandial_rise_mg_dl=80.0,
)
ELDERLY_ATRIAL_FIBRILLATION: Final = PatientProfile(
    "elderly_atrial_fibrillation",
    79,
    "female",
    1.58,
    59.0,
    33.0,
    142.0,
    74.0,
    blood_pressure_sd_mmhg=11.0,
    heart_rate_bpm=84.0,
    heart_rate_sd_bpm=12.0,
    irregular_pulse_rate=0.6,
    spo2_percent=95.5,
    spo2_sd_percent=1.2,
    perfusion_index_percent=1.8,
    temperature_c=36.5,
)
ATHLETE: Final = PatientProfile(
    "athlete",
    29,
    "male",
    1.82,
    78.0,
    12.0,
    114.0,
    70.0,
    heart_rate_bpm=52.0,
    heart_rate_sd_bpm=4.0,
    spo2_percent=98.5,
    spo2_sd_percent=0.5,
    perfusion_index_percent=6.0,
    glucose_fasting_mg_dl=84.0,
)

PROFILES: Final[Mapping[str, PatientProfile]] = {
    profile.name: profile
    for profile in (NORMAL, HYPERTENSIVE, COPD, DIABETIC, ELDERLY_ATRIAL_FIBRILLATION, ATHLETE)
}
"""The built-in patient profiles by name (for scenarios and the CLI)."""


@dataclass(frozen=True, slots=True)
class BloodPressureReading:
    """One cuff measurement, in whole mmHg and beats per minute."""

    systolic: int
    diastolic: int
    mean_arterial_pressure: int
    pulse_rate: int
    irregular_pulse: bool
    body_movement: bool


@dataclass(frozen=True, slots=True)
class OximetryReading:
    """One pulse oximeter reading: SpO2 (%), pulse rate (/min) and perfusion index (%)."""

    spo2: int
    pulse_rate: int
    perfusion_index: Decimal


@dataclass(frozen=True, slots=True)
class BodyReading:
    """One weighing with the body composition a bioimpedance scale derives from it."""

    weight_kg: float
    height_m: float
    body_fat_percent: float
    fat_free_mass_kg: float
    soft_lean_mass_kg: float
    muscle_mass_kg: float
    body_water_mass_kg: float
    basal_metabolism_kj: int
    impedance_ohm: float

    @property
    def bmi(self) -> float:
        """Body mass index of this weighing."""
        return self.weight_kg / self.height_m**2

    @property
    def muscle_percent(self) -> float:
        """Muscle mass as a share of body weight."""
        return 100 * self.muscle_mass_kg / self.weight_kg


@dataclass(frozen=True, slots=True)
class HeartRateReading:
    """One heart rate notification's worth: the rate and the RR intervals (s) behind it."""

    heart_rate: int
    rr_intervals_s: tuple[float, ...]


class Physiology:
    """Draws readings for one patient from the device's seeded random generator."""

    def __init__(self, patient: PatientProfile, rng: random.Random) -> None:
        self.patient = patient
        self._rng = rng

    def _normal(self, mean: float, sd: float, low: float, high: float) -> float:
        return min(high, max(low, self._rng.gauss(mean, sd)))

    def blood_pressure(self) -> BloodPressureReading:
        """Draw a cuff reading: diastolic correlates with systolic; MAP is dia + (sys - dia) / 3."""
        p = self.patient
        z1, z2 = self._rng.gauss(0, 1), self._rng.gauss(0, 1)
        sd = p.blood_pressure_sd_mmhg
        systolic = round(min(260.0, max(70.0, p.systolic_mmhg + sd * z1)))
        # Correlation of about 0.7 between the two, with a smaller spread for diastolic.
        diastolic_draw = p.diastolic_mmhg + 0.65 * sd * (0.7 * z1 + math.sqrt(0.51) * z2)
        diastolic = round(min(systolic - 15.0, max(35.0, diastolic_draw)))
        mean_arterial = round(diastolic + (systolic - diastolic) / 3)
        irregular = self._rng.random() < p.irregular_pulse_rate
        pulse_sd = p.heart_rate_sd_bpm * (2.0 if irregular else 1.0)
        pulse = round(self._normal(p.heart_rate_bpm, pulse_sd, 35.0, 200.0))
        body_movement = self._rng.random() < 0.02  # noqa: PLR2004 - occasional fidgeting
        return BloodPressureReading(
            systolic, diastolic, mean_arterial, pulse, irregular, body_movement
        )

    def oximetry(self) -> OximetryReading:
        """Draw a pulse oximeter reading: the pulse rises as saturation falls below normal."""
        p = self.patient
        spo2 = round(self._normal(p.spo2_percent, p.spo2_sd_percent, 70.0, 100.0))
        hypoxic_drive = max(0.0, 96.0 - spo2) * 1.5
        pulse = round(
            self._normal(p.heart_rate_bpm + hypoxic_drive, p.heart_rate_sd_bpm, 35.0, 220.0)
        )
        perfusion = math.exp(self._rng.gauss(math.log(p.perfusion_index_percent), 0.25))
        perfusion_index = Decimal(str(min(20.0, max(0.1, perfusion)))).quantize(_TENTH)
        return OximetryReading(spo2, pulse, perfusion_index)

    def temperature(self) -> Decimal:
        """Draw a body temperature in degrees Celsius, to 0.1."""
        p = self.patient
        value = self._normal(p.temperature_c, p.temperature_sd_c, 34.0, 42.0)
        return Decimal(str(value)).quantize(_TENTH)

    def glucose(self, *, postprandial: bool) -> int:
        """Draw a capillary glucose in mg/dL, within a meter's 20..600 range."""
        p = self.patient
        mean = p.glucose_fasting_mg_dl + (p.glucose_postprandial_rise_mg_dl if postprandial else 0)
        return round(self._normal(mean, p.glucose_sd_mg_dl, 20.0, 600.0))

    def body(self) -> BodyReading:
        """Draw a weighing and its bioimpedance analysis (Katch-McArdle basal metabolism)."""
        p = self.patient
        weight = self._normal(p.weight_kg, 0.35, 20.0, 300.0)
        body_fat = self._normal(p.body_fat_percent, 0.6, 3.0, 70.0)
        fat_free = weight * (1 - body_fat / 100)
        soft_lean = 0.95 * fat_free  # fat-free mass less bone mineral
        muscle = 0.88 * soft_lean
        water = 0.73 * fat_free
        basal_kcal = 370 + 21.6 * fat_free
        height_cm = p.height_m * 100
        impedance = self._normal(0.85 * height_cm**2 / fat_free, 10.0, 200.0, 1000.0)
        return BodyReading(
            weight,
            p.height_m,
            body_fat,
            fat_free,
            soft_lean,
            muscle,
            water,
            round(basal_kcal * _KCAL_TO_KJ),
            impedance,
        )

    def heart_rate(self) -> HeartRateReading:
        """Draw a heart rate and one or two RR intervals; an irregular profile varies them."""
        p = self.patient
        bpm = self._normal(p.heart_rate_bpm, p.heart_rate_sd_bpm / 2, 30.0, 220.0)
        mean_rr = 60.0 / bpm
        irregular = self._rng.random() < p.irregular_pulse_rate
        spread = 0.15 if irregular else 0.04
        count = 2 if bpm > 90.0 else 1  # noqa: PLR2004 - beats per 1 s notification
        intervals = tuple(self._normal(mean_rr, spread * mean_rr, 0.25, 2.0) for _ in range(count))
        rate = round(60.0 / (sum(intervals) / len(intervals)))
        return HeartRateReading(rate, intervals)
