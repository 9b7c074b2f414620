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


def methods_and_sets(args, methods) -> tuple[list[str], dict[str, list[str]]]:
    """The chosen ``--methods`` (checked against ``methods``) and each one's extra overrides from the repeatable
    ``--set METHOD:section.key=value``; a bad name or item ends the script with one line."""
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in names if n not in methods]
    if unknown:
        sys.exit(f"error: unknown method(s) {', '.join(unknown)}: choose from {', '.join(methods)}")
    extra: dict[str, list[str]] = {n: [] for n in names}
    for item in args.set:
        n, _, kv = item.partition(":")
        if n not in extra or "=" not in kv:
            sys.exit(f"error: --set {item!r}: write METHOD:section.key=value with METHOD one of {', '.join(names)}")
        extra[n].append(kv)
    return names, extra
