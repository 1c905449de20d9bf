"""Whether the hub's clock may set device clocks: the kernel's answer and the policy values.

The kernel's synchronisation state cannot be forced on this machine (only an NTP daemon with
CAP_SYS_TIME changes it), so the real call is only checked for a clean boolean answer; each
answer adjtimex(2) can give is then checked through a stand-in C library.
"""

from __future__ import annotations

import ctypes
import sys

import pytest

import gateway.hubclock
from gateway.config import config_from_mapping
from gateway.hubclock import HubClockPolicy, kernel_clock_synchronised

# adjtimex(2) return values (clock states) from <sys/timex.h>.
TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR = range(6)


class FakeLibc:
    """A C library whose adjtimex returns a chosen clock state (the kernel's cannot be set)."""

    def __init__(self, state: int) -> None:
        self.state = state
        self.buffers: list[object] = []

    def adjtimex(self, buffer: object) -> int:
        self.buffers.append(buffer)
        return self.state


def use_libc(monkeypatch: pytest.MonkeyPatch, libc: object) -> None:
    def load(name: str, *, use_errno: bool = False) -> object:
        del name
        assert use_errno
        return libc

    monkeypatch.setattr(gateway.hubclock.ctypes, "CDLL", load)


def test_the_real_kernel_answers_with_a_bool():
    assert type(kernel_clock_synchronised()) is bool


@pytest.mark.parametrize(
    ("state", "synchronised"),
    [
        (TIME_OK, True),
        (TIME_INS, True),
        (TIME_DEL, True),
        (TIME_OOP, True),
        (TIME_WAIT, True),
        (TIME_ERROR, False),
        (-1, False),
    ],
    ids=["ok", "leap-insert", "leap-delete", "leap-in-progress", "leap-done", "error", "failed"],
)
def test_each_kernel_clock_state(monkeypatch, state, synchronised):
    libc = FakeLibc(state)
    use_libc(monkeypatch, libc)

    assert kernel_clock_synchronised() is synchronised
    assert len(libc.buffers) == 1
    buffer = libc.buffers[0]
    assert isinstance(buffer, ctypes.Array)
    # struct timex is 208 bytes on 64-bit Linux; modes (its first field) 0 means read only.
    assert ctypes.sizeof(buffer) >= 208
    assert bytes(buffer[:4]) == b"\x00\x00\x00\x00"


def test_a_c_library_that_cannot_be_loaded_means_not_synchronised(monkeypatch):
    def missing(name: str, *, use_errno: bool = False) -> object:
        del use_errno
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(gateway.hubclock.ctypes, "CDLL", missing)

    assert kernel_clock_synchronised() is False


def test_a_c_library_without_adjtimex_means_not_synchronised(monkeypatch):
    use_libc(monkeypatch, object())

    assert kernel_clock_synchronised() is False


def test_other_systems_are_never_synchronised(monkeypatch):
    libc = FakeLibc(TIME_OK)
    use_libc(monkeypatch, libc)
    monkeypatch.setattr(sys, "platform", "darwin")

    assert kernel_clock_synchronised() is False
    assert libc.buffers == []


def test_policy_values_are_the_configuration_words():
    assert {policy.value for policy in HubClockPolicy} == {"auto", "trusted", "never"}
    assert HubClockPolicy("auto") is HubClockPolicy.AUTO
    assert HubClockPolicy("trusted") is HubClockPolicy.TRUSTED
    assert HubClockPolicy("never") is HubClockPolicy.NEVER
    assert f"{HubClockPolicy.NEVER}" == "never"


def test_an_unknown_policy_word_is_refused():
    with pytest.raises(ValueError, match="always"):
        HubClockPolicy("always")


@pytest.mark.parametrize("word", ["auto", "trusted", "never"])
def test_the_configuration_takes_each_policy(word):
    config = config_from_mapping(
        {"hub_id": "hub-0042", "mqtt": {"broker_url": "mqtt://127.0.0.1"}, "hub_clock": word}
    )
    assert config.hub_clock is HubClockPolicy(word)


def test_the_configuration_defaults_to_auto():
    config = config_from_mapping({"hub_id": "hub-0042", "mqtt": {"broker_url": "mqtt://127.0.0.1"}})
    assert config.hub_clock is HubClockPolicy.AUTO
