"""The committed JSON Schema files: how they are written, and the command that checks them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["schema_cli", "schema_file_text"]


def schema_file_text(schema: dict[str, object]) -> str:
    """Return a schema as the committed files hold it (sorted keys, 2-space indent)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_cli(
    argv: Sequence[str] | None,
    *,
    module: str,
    what: str,
    text: Callable[[], str],
    default_path: Path,
    description: str | None,
) -> int:
    """Run `--write-schema` (regenerate the file) or `--check-schema` (exit 1 if it drifted)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-schema", action="store_true", help="write the schema file")
    action.add_argument(
        "--check-schema", action="store_true", help=f"exit 1 if the file differs from {what}"
    )
    parser.add_argument("--path", type=Path, default=default_path, help="schema file path")
    args = parser.parse_args(argv)
    path: Path = args.path
    if args.write_schema:
        path.write_text(text(), encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
        return 0
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != text():
        sys.stdout.write(f"{path} differs from {what}; run: python -m {module} --write-schema\n")
        return 1
    return 0
