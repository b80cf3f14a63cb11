"""Reading a JSON Lines file a person hands us (an eval question list, a captioning list): one JSON
object a line, blank lines skipped, and a bad line refused as an InputError naming the file and line.

It knows text files and JSON; it does not know what the objects' fields mean (the caller checks them).
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line, numbered from 1."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"Cannot read {path}: {e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {n} is not JSON: {e}") from None
        if not isinstance(entry, dict):
            raise InputError(f"{path} line {n} is not a JSON object.")
        out.append((n, entry))
    return out
