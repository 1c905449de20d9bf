"""Scenario files: a household of simulated devices, their patients, behaviours and schedules.

A scenario is a TOML (or YAML) file::

    household = "Single cuff"
    seed = 7

    [[devices]]
    type = "blood_pressure_cuff"
    address = "F0:00:00:00:00:01"
    patient = "hypertensive"

    [devices.behaviours]
    advertise_on_button_press = true
    disconnect_after_send_s = 5

    [devices.schedule]
    first_after_s = 0
    every_s = 30
    forever = true

`load_scenario` reads and validates one (strict types, no unknown keys) and raises
`ScenarioError` naming the file, the field and what to write instead. `build_household` makes
the devices on a `Radio`, and `run_device` takes a device through its schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Self, TypeAlias, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from simulators.devices import (
    DEVICE_TYPES,
    PROFILES,
    QUIRK_BEHAVIOURS,
    Behaviours,
    ContinuousOximeter,
    DeviceIdentity,
    GlucoseMeter,
    HeartRateStrap,
    Pairing,
    PayloadFault,
    SimulatedDevice,
    SimulatorConfig,
    SpotCheckOximeter,
    WeightScale,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence


__all__ = [
    "BUNDLED_SCENARIOS",
    "MULTI_USER_TYPES",
    "RACP_TYPES",
    "BehavioursSpec",
    "DeviceClass",
    "DeviceSpec",
    "IdentitySpec",
    "Scenario",
    "ScenarioError",
    "ScenarioProblem",
    "ScheduleSpec",
    "bundled_scenarios",
    "find_scenario",
    "load_scenario",
    "parse_device_spec",
    "parse_scenario",
]

BUNDLED_SCENARIOS: Final = Path(__file__).with_name("scenarios")
"""The directory of the scenarios shipped with the package (`vitalbridge-sim run NAME`)."""
SUFFIXES: Final = (".toml", ".yaml", ".yml")

MULTI_USER_TYPES: Final = frozenset(
    kind for kind, cls in DEVICE_TYPES.items() if issubclass(cls, WeightScale)
)
"""Device types with a User Data Service: several users, each with a consent code."""
RACP_TYPES: Final = frozenset(
    kind for kind, cls in DEVICE_TYPES.items() if issubclass(cls, SpotCheckOximeter | GlucoseMeter)
)
"""Device types that serve their memory through the Record Access Control Point."""
_NO_MEMORY: Final = frozenset(
    kind
    for kind, cls in DEVICE_TYPES.items()
    if issubclass(cls, ContinuousOximeter | HeartRateStrap)
)

UNKNOWN_USER: Final = 0xFF
# UserDataServer's default: the scales register at most four users.
MAX_UDS_USERS: Final = 4
MAX_CONSENT_CODE: Final = 9999
# A scan response is 31 octets; the Complete Local Name takes two of them for its header.
MAX_NAME_BYTES: Final = 29
_ADDRESS: Final = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){5}")
_CUSTOM: Final = "scenario"
_YEAR_S: Final = 365 * 24 * 3600
_EXAMPLE_ADDRESS: Final = "F0:00:00:00:00:01"


def _invalid(message: str, problems: Sequence[tuple[str, str]] = ()) -> PydanticCustomError:
    """Make a validation error whose message is ours (no "Value error," prefix), with sub-paths."""
    return PydanticCustomError(_CUSTOM, "{message}", {"message": message, "problems": problems})


def _choices(names: Iterable[object]) -> str:
    return ", ".join(str(name) for name in names)


DeviceClass: TypeAlias = type[SimulatedDevice]
"""A simulated device class (a `DeviceSpec` has a field named `type`, hiding the builtin)."""


class _Strict(BaseModel):
    """Strict types (no "5" for 5, no nan), no unknown keys, immutable, attribute docstrings."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )


class BehavioursSpec(_Strict):
    """The `behaviours` table: any field of `simulators.devices.Behaviours`, same defaults."""

    store_offline: bool = True
    """Keep measurements taken while no hub listens, and send them later."""
    clock_drift_ppm: float = 0.0
    """How fast (positive) or slow the device clock runs, in parts per million."""
    clock_start: dt.datetime | None = None
    """Where the device clock starts (e.g. 1970-01-01T00:00:00, never set); unset: the time."""
    battery_change_resets_clock: bool = True
    """Whether a battery change sends the clock back to 1970."""
    battery_percent: int = 85
    """The battery level at power-on; 10 or less is a low battery."""
    advertising_interval_ms: float = 20.0
    """How often the device advertises, 20..10240 ms."""
    advertise_on_button_press: bool = False
    """Advertise only after a button press, and stop once a hub has connected."""
    disconnect_after_send_s: float | None = None
    """Disconnect this long after the last measurement or RACP transfer."""
    pairing: Annotated[Pairing | None, Field(strict=False)] = None
    """Require pairing: "just_works" or "passkey"."""
    racp_disconnect_after_records: int | None = None
    """Drop the link after sending this many records of a RACP report."""
    payload_fault: Annotated[PayloadFault | None, Field(strict=False)] = None
    """A defect put into measurement payloads: truncated, malformed, reserved_bits, ..."""
    payload_fault_every: int = 1
    """Put the fault into every Nth measurement (1: all of them)."""
    notification_interval_s: float = 0.0
    """A slow link: wait this long after each notification."""
    notification_loss_rate: float = 0.0
    """A lossy link: the share of notifications dropped, 0..1."""
    requires_clock_set: bool = False
    """Vendor quirk: send nothing until the hub writes Current Time (model VB-xx-QCLOCK)."""
    zero_fills_absent_fields: bool = False
    """Vendor quirk (cuff): send zero for the unmeasured mean and pulse (model VB-BP-QZERO)."""
    consent_required_to_send: bool = False
    """Vendor quirk (scales): send nothing until UDS consent (model VB-xx-QCONSENT)."""

    @field_validator("clock_start", mode="before")
    @classmethod
    def _local_date_time(cls, value: object) -> object:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            raise _invalid(f"{value} has no time of day; write {value}T00:00:00")
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            raise _invalid(
                f"{value.isoformat()} has a UTC offset; device clocks show local time, "
                f"so write it without one (e.g. {value.replace(tzinfo=None).isoformat()})"
            )
        if isinstance(value, str):
            raise _invalid(
                f"{value!r} is a string; write the date and time unquoted, "
                "e.g. clock_start = 1970-01-01T00:00:00"
            )
        return value

    @model_validator(mode="after")
    def _builds(self) -> Self:
        try:
            self.build()
        except ValueError as exc:
            raise _invalid(str(exc)) from exc
        return self

    def build(self) -> Behaviours:
        """Return the `Behaviours` these settings describe."""
        return Behaviours(**{name: getattr(self, name) for name in type(self).model_fields})


class IdentitySpec(_Strict):
    """The `identity` table: what Device Information serves."""

    manufacturer: str
    model: str
    serial: str
    firmware: str
    hardware: str = "1.0"

    def build(self) -> DeviceIdentity:
        """Return the `DeviceIdentity` to serve."""
        return DeviceIdentity(
            self.manufacturer, self.model, self.serial, self.firmware, self.hardware
        )


class ScheduleSpec(_Strict):
    """The `schedule` table: when the device measures."""

    first_after_s: float = Field(default=0.0, ge=0)
    """The first measurement, this long after power-on."""
    every_s: float = Field(default=60.0, gt=0)
    """The time between measurements."""
    count: int | None = Field(default=None, ge=0)
    """How many measurements (default 1); 0 for none but the backlog."""
    forever: bool = False
    """Measure until the run stops, instead of `count` times."""
    button: bool | None = None
    """Press the button before each measurement; default: if it advertises on a press."""
    backlog: int = Field(default=0, ge=0, le=1000)
    """Measurements taken before power-on, stored for the hub (the days it was away)."""
    backlog_every_s: float = Field(default=3600.0, gt=0, le=_YEAR_S)
    """How far apart the backlog measurements are, going back from power-on."""
    users: list[Annotated[int, Field(ge=0, le=UNKNOWN_USER)]] = []
    """Multi-user scales: who steps on, in turn (user index; 255: a guest)."""

    @model_validator(mode="after")
    def _count_or_forever(self) -> Self:
        if self.forever and self.count is not None:
            raise _invalid("give either count or forever = true, not both")
        return self

    @property
    def measurements(self) -> int | None:
        """How many scheduled measurements, None for no end."""
        if self.forever:
            return None
        return 1 if self.count is None else self.count


class DeviceSpec(_Strict):
    """One `[[devices]]` entry: a device type at an address, whom it measures and how it acts."""

    type: str
    """The device type (`vitalbridge-sim devices` lists them)."""
    address: str
    """The Bluetooth device address, e.g. F0:00:00:00:00:01."""
    name: str | None = None
    """The advertised name; unset: the type's default name."""
    patient: str = "normal"
    """Whom the device measures (`vitalbridge-sim profiles`); user 0 of a multi-user scale."""
    household: list[str] = []
    """Multi-user scales: the other users' profiles, user index 1, 2, ..."""
    registered_users: list[Annotated[int, Field(ge=0, le=MAX_CONSENT_CODE)]] = []
    """Multi-user scales: UDS consent codes already registered, for user index 0, 1, ..."""
    seed: int | None = None
    """The device's seed; unset: the scenario seed plus the device's index."""
    identity: IdentitySpec | None = None
    """Device Information; unset: the type's default with a serial from the address."""
    behaviours: BehavioursSpec = BehavioursSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in DEVICE_TYPES:
            close = difflib.get_close_matches(value, DEVICE_TYPES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _invalid(
                f"{value!r} is not a device type; {hint}use one of: {_choices(DEVICE_TYPES)}"
            )
        return value

    @field_validator("address")
    @classmethod
    def _bd_addr(cls, value: str) -> str:
        address = value.upper()
        if not _ADDRESS.fullmatch(address):
            raise _invalid(
                f"{value!r} is not a Bluetooth address; write six hex bytes with colons, "
                f"e.g. {_EXAMPLE_ADDRESS!r}"
            )
        if address in {"00:00:00:00:00:00", "FF:FF:FF:FF:FF:FF"}:
            raise _invalid(f"{value!r} is reserved; use another, e.g. {_EXAMPLE_ADDRESS!r}")
        return address

    @field_validator("name")
    @classmethod
    def _fits_the_scan_response(cls, value: str | None) -> str | None:
        if value is not None and not 0 < len(value.encode()) <= MAX_NAME_BYTES:
            raise _invalid(
                f"{value!r} must be 1 to {MAX_NAME_BYTES} bytes of UTF-8 (what a scan response "
                "holds); shorten it"
            )
        return value

    @field_validator("patient")
    @classmethod
    def _known_patient(cls, value: str) -> str:
        return _profile(value)

    @field_validator("household")
    @classmethod
    def _known_household(cls, value: list[str], info: ValidationInfo) -> list[str]:
        problems = [
            (f"[{index}]", _profile_problem(name))
            for index, name in enumerate(value)
            if name not in PROFILES
        ]
        if problems:
            raise _invalid(problems[0][1], problems)
        kind = info.data.get("type")
        if value and kind is not None and kind not in MULTI_USER_TYPES:
            raise _invalid(_single_user(kind, "household"))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = list(self._problems())
        if problems:
            raise _invalid(problems[0][1], problems)
        return self

    def _problems(self) -> Iterator[tuple[str, str]]:
        multi_user = self.type in MULTI_USER_TYPES
        if self.registered_users and not multi_user:
            yield "registered_users", _single_user(self.type, "registered_users")
        if len(self.registered_users) > MAX_UDS_USERS:
            yield (
                "registered_users",
                (
                    f"a scale registers at most {MAX_UDS_USERS} users; list at most "
                    f"{MAX_UDS_USERS} consent codes"
                ),
            )
        for quirk in QUIRK_BEHAVIOURS:
            if getattr(self.behaviours, quirk) and quirk not in self.device_type.QUIRKS_SIMULATED:
                showing = sorted(
                    kind for kind, cls in DEVICE_TYPES.items() if quirk in cls.QUIRKS_SIMULATED
                )
                yield (
                    f"behaviours.{quirk}",
                    (
                        f"a {self.type} does not simulate {quirk}; remove it, or use one of: "
                        f"{_choices(showing)}"
                    ),
                )
        schedule = self.schedule
        if schedule.users and not multi_user:
            yield "schedule.users", _single_user(self.type, "schedule.users")
        last = len(self.household)
        for index, user in enumerate(schedule.users):
            if last < user < UNKNOWN_USER:
                yield (
                    f"schedule.users[{index}]",
                    (
                        f"user {user} is not in the household (0 is the patient, 1..{last} "
                        f"the household list); use 0..{last}, or {UNKNOWN_USER} for a guest"
                    ),
                )
        if schedule.button and not self.behaviours.advertise_on_button_press:
            yield (
                "schedule.button",
                (
                    "only a device that waits for its button has one to press; set "
                    "behaviours.advertise_on_button_press = true, or leave button out"
                ),
            )
        if schedule.backlog and self.type in _NO_MEMORY:
            yield (
                "schedule.backlog",
                f"a {self.type} keeps no readings; remove backlog, or use a device with a memory",
            )
        elif schedule.backlog and not self.behaviours.store_offline:
            yield (
                "schedule.backlog",
                "a backlog needs behaviours.store_offline = true (the device keeps readings)",
            )

    @property
    def device_type(self) -> DeviceClass:
        """The simulated device class of `type`."""
        return DEVICE_TYPES[self.type]

    @property
    def display_name(self) -> str:
        """The advertised name: `name`, or the device type's default."""
        return self.name or self.device_type.DEFAULT_NAME

    @property
    def presses_button(self) -> bool:
        """Whether the schedule presses the button before each measurement."""
        if self.schedule.button is not None:
            return self.schedule.button
        return self.behaviours.advertise_on_button_press

    def config(self, seed: int) -> SimulatorConfig:
        """Return the device's `SimulatorConfig`, seeded with `seed`."""
        return SimulatorConfig(
            name=self.name,
            patient=PROFILES[self.patient],
            household=tuple(PROFILES[name] for name in self.household),
            seed=seed,
            identity=self.identity.build() if self.identity is not None else None,
            behaviours=self.behaviours.build(),
        )


class Scenario(_Strict):
    """A household of simulated devices: a name, a seed and the devices."""

    household: str = Field(min_length=1)
    """The household's name, shown by the CLI."""
    description: str = ""
    """One sentence on what the scenario shows."""
    seed: int = 0
    """Seeds the radio and, plus each device's index, every device without its own seed."""
    devices: list[DeviceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        problems: list[tuple[str, str]] = []
        for field, key in (("address", "address"), ("name", "display_name")):
            seen: dict[str, int] = {}
            for index, device in enumerate(self.devices):
                value = getattr(device, key)
                if value in seen:
                    problems.append(
                        (
                            f"devices[{index}].{field}",
                            (
                                f"{value!r} is already the {field} of devices[{seen[value]}]; "
                                f"give each device its own {field}"
                            ),
                        )
                    )
                seen.setdefault(value, index)
        if problems:
            raise _invalid(problems[0][1], problems)
        return self

    def device_seed(self, index: int) -> int:
        """Return the seed of `devices[index]`: its own, else the scenario seed plus the index."""
        own = self.devices[index].seed
        return self.seed + index if own is None else own

    def with_seed(self, seed: int) -> Scenario:
        """Return this scenario with another seed (devices without their own follow it)."""
        return self.model_copy(update={"seed": seed})


def _profile_problem(name: str) -> str:
    close = difflib.get_close_matches(name, PROFILES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{name!r} is not a profile; {hint}use one of: {_choices(PROFILES)}"


def _profile(name: str) -> str:
    if name not in PROFILES:
        raise _invalid(_profile_problem(name))
    return name


def _single_user(kind: str, field: str) -> str:
    return (
        f"a {kind} has a single user; {field} is for the multi-user types "
        f"({_choices(sorted(MULTI_USER_TYPES))}); remove it"
    )


# -- errors ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ScenarioProblem:
    """One thing wrong in a scenario: where (a field path, empty for the file) and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file, field and the fix."""

    def __init__(self, source: str, problems: Sequence[ScenarioProblem]) -> None:
        self.source = source
        """The file (or "command line") the scenario came from."""
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))

    @property
    def fields(self) -> tuple[str, ...]:
        """The field paths of the problems, e.g. ``devices[1].patient``."""
        return tuple(problem.field for problem in self.problems)


_MISSING_HINTS: Final = {
    "household": 'add household = "Our flat" (a name for the scenario)',
    "devices": "add at least one [[devices]] table",
    "type": f'add type = "blood_pressure_cuff" (one of: {_choices(DEVICE_TYPES)})',
    "address": f'add address = "{_EXAMPLE_ADDRESS}"',
}
_TYPE_HINTS: Final = {
    "devices": "write each device as a [[devices]] table (TOML) or a list item (YAML)",
}


def _path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _join(path: str, sub: str) -> str:
    if not path or not sub or sub.startswith("["):
        return path + sub
    return f"{path}.{sub}"


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        if (model := _model_in(argument)) is not None:
            return model
    return None


def _fields_at(root: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Return the field names allowed at a location (of the model it points into)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _problems(
    error: ValidationError, root: type[BaseModel] = Scenario
) -> Iterator[ScenarioProblem]:
    for item in error.errors(include_url=False):
        loc = item["loc"]
        path = _path(loc)
        kind = item["type"]
        name = loc[-1] if loc else ""
        if kind == _CUSTOM:
            subproblems = item.get("ctx", {}).get("problems") or [("", item["msg"])]
            for sub, message in subproblems:
                yield ScenarioProblem(_join(path, sub), message)
        elif kind == "extra_forbidden":
            fields = _fields_at(root, loc[:-1])
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield ScenarioProblem(
                path, f"{name!r} is not a field here; {hint}use one of: {_choices(fields)}"
            )
        elif kind == "missing":
            yield ScenarioProblem(path, f"missing; {_MISSING_HINTS.get(str(name), f'add {name}')}")
        else:
            got = item.get("input")
            message = f"{item['msg'][:1].lower()}{item['msg'][1:]}, not {got!r}"
            if isinstance(got, str) and got.strip().lower() in {"true", "false"}:
                message += "; write true or false without quotes"
            elif isinstance(got, str) and re.fullmatch(r"[-+]?[0-9][0-9_.eE+-]*", got.strip()):
                message += "; write the number without quotes"
            elif str(name) in _TYPE_HINTS:
                message += f"; {_TYPE_HINTS[str(name)]}"
            yield ScenarioProblem(path, message)


# -- loading -----------------------------------------------------------------------------------


def _parse(path: Path, text: str) -> object:
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(
                str(path), [ScenarioProblem("", f"not valid TOML ({exc}); fix the syntax there")]
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(
            str(path), [ScenarioProblem("", f"not valid YAML{where} ({problem}); fix the syntax")]
        ) from exc


def parse_scenario(data: object, source: str) -> Scenario:
    """Validate already-parsed scenario data (a mapping) from `source`."""
    if not isinstance(data, dict):
        raise ScenarioError(
            source,
            [ScenarioProblem("", "the file must hold a table with household, seed and devices")],
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, list(_problems(exc))) from exc


def parse_device_spec(data: dict[str, object], source: str = "command line") -> DeviceSpec:
    """Validate one device entry on its own (what `attach` runs)."""
    try:
        return DeviceSpec.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, list(_problems(exc, DeviceSpec))) from exc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; TOML or YAML by its suffix."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ScenarioError(
            str(path),
            [ScenarioProblem("", "unknown file type; name it *.toml, *.yaml or *.yml")],
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            str(path),
            [ScenarioProblem("", f"cannot read it ({exc.strerror}); check the path")],
        ) from exc
    return parse_scenario(_parse(path, text), str(path))


def bundled_scenarios() -> dict[str, Path]:
    """Return the scenarios shipped with the package, by name (the file name's stem)."""
    return {path.stem: path for path in sorted(BUNDLED_SCENARIOS.glob("*.toml"))}


def find_scenario(name_or_path: str) -> Path:
    """Return the file a scenario argument means: a path, or a bundled scenario's name."""
    path = Path(name_or_path)
    if path.suffix in SUFFIXES or path.exists():
        return path
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    raise ScenarioError(
        name_or_path,
        [
            ScenarioProblem(
                "",
                "no such scenario; give a path to a .toml or .yaml file, or a bundled "
                f"scenario: {_choices(bundled)}",
            )
        ],
    )
