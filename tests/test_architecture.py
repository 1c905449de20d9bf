"""Import rules that keep the codecs pure: standard library only, and no I/O or clock modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import device_profiles

PACKAGE = Path(device_profiles.__file__).parent
# Modules whose presence would mean the codecs do I/O, concurrency or read the clock.
FORBIDDEN = {
    "asyncio",
    "logging",
    "socket",
    "os",
    "io",
    "subprocess",
    "threading",
    "time",
    "random",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_device_profiles_imports_only_the_standard_library_and_itself():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) > 10
    for path in files:
        outside = {
            name
            for name in _imports(path)
            if name != "device_profiles" and name not in sys.stdlib_module_names
        }
        assert outside == set(), f"{path.name} imports {outside}"


def test_device_profiles_does_no_io_and_reads_no_clock():
    for path in sorted(PACKAGE.glob("*.py")):
        assert _imports(path) & FORBIDDEN == set(), path.name


def test_no_module_reads_the_current_time():
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for call in (".now(", ".utcnow(", ".today(", "time.time("):
            assert call not in text, f"{path.name} calls {call}"


def test_the_gateway_never_imports_the_simulators():
    # The BLE backend is chosen by configuration (a module name), so that production code paths
    # are the ones tested; an import of `simulators` would make the hub depend on Bumble.
    gateway = PACKAGE.parent / "gateway"
    files = sorted(gateway.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        assert "simulators" not in _imports(path), path.relative_to(gateway.parent)


def test_the_codecs_import_neither_the_gateway_nor_the_simulators():
    for path in sorted(PACKAGE.glob("*.py")):
        assert _imports(path) & {"gateway", "simulators"} == set(), path.name
