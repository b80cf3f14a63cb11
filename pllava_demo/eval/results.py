"""The rows of an evaluation run: one JSON line per (question, setting), appended with flush + fsync, so
a stopped run keeps every finished row and the same command continues where it stopped.

A row's `key` hashes the task, video, bound, question(s) and the setting (alpha, strategy, frames,
protocol, model): a rerun with another setting adds rows, never confuses them. Reading keeps the last
row per key (a judge pass appends scored copies of unscored rows) and ignores a torn last line (a kill
mid-write). Knows JSON lines only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def row_key(item, setting: dict) -> str:
    return digest([item.task, item.video, item.bound, list(item.questions), setting])


def read_rows(path) -> dict[str, dict]:
    """key -> the last row written for it; a line that is not a JSON object (a torn write) is skipped."""
    rows: dict[str, dict] = {}
    p = Path(path)
    if not p.exists():
        return rows
    with open(p, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                rows[row["key"]] = row
    return rows


class RowWriter:
    """Appends rows to a JSONL file; knows which keys are already there."""

    def __init__(self, path, *, retry_errors: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"--out {self.path} is a folder; give a .jsonl file name.")
        self.rows = read_rows(self.path)
        self.retry_errors = retry_errors
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._file = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        """A kill mid-write leaves a line without its newline: end it, so the next row starts a line."""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def is_done(self, key: str) -> bool:
        row = self.rows.get(key)
        return row is not None and not (self.retry_errors and "error" in row)

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows[row["key"]] = row

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
