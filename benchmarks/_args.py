"""Argument handling shared by the benchmark scripts (imported as ``_args`` from beside them)."""
from __future__ import annotations

import sys
from pathlib import Path


def data_file(args, default: str, what: str, example: str) -> None:
    """Settle ``args.data``: a positional that looks like an override (``key=value``) joins
    ``args.overrides`` and the default path is used; a path that is not a file ends the script with one line."""
    if "=" in args.data:
        args.overrides.insert(0, args.data)
        args.data = default
    if not Path(args.data).is_file():
        sys.exit(f"error: {what} {args.data} not found: pass {example}")
