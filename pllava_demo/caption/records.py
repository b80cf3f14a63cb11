"""The captioner's files: which videos to caption (`discover`: a folder or a .txt/.csv/.jsonl list)
and what is already done (`CaptionWriter`: a resumable, durable JSONL), plus a Parquet copy of it.

Knows paths, JSON and CSV; nothing of models, video decoding or Ray.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import clean_text
from ..errors import InputError
from ..jsonl import read_jsonl
from ..settings import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".csv", ".jsonl")
PATH_FIELDS = ("path", "video", "file", "filename")


# -- where the work is ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptionJob:
    path: str
    prompt: str | None = None  # a per-video instruction from a CSV/JSONL list; None = the run's prompt


def _resolve(entry: str, base: Path) -> str:
    p = Path(os.path.expanduser(entry.strip()))
    return str(p if p.is_absolute() else base / p)


def discover(source: str | os.PathLike) -> list[CaptionJob]:
    """Videos under a folder (recursive, sorted, by extension), or listed in a file: .txt (one path a
    line, '#' comments), .csv (a header with a path/video/file column, optional prompt column) or
    .jsonl (objects with "path" or "video", optional "prompt"). Relative paths in a list are relative
    to the list's folder."""
    src = Path(os.path.expanduser(str(source)))
    if src.is_dir():
        found = sorted(str(p) for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        return [CaptionJob(p) for p in found]
    if not src.is_file():
        raise InputError(f"'{src}' is neither a folder nor a list file ({', '.join(LIST_SUFFIXES)}).")
    suffix, base = src.suffix.lower(), src.parent
    if suffix == ".txt":
        lines = src.read_text(encoding="utf-8").splitlines()
        return [CaptionJob(_resolve(x, base)) for x in lines if x.strip() and not x.lstrip().startswith("#")]
    if suffix == ".csv":
        with open(src, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [_job_from_record(r, base, src, i + 2) for i, r in enumerate(rows)]
    if suffix == ".jsonl":
        return [_job_from_record(record, base, src, n) for n, record in read_jsonl(src)]
    if suffix in VIDEO_EXTENSIONS:
        return [CaptionJob(str(src))]
    raise InputError(f"'{src.name}' is not a folder, a video or a list file; lists must end in {', '.join(LIST_SUFFIXES)}.")


def _job_from_record(record: dict, base: Path, src: Path, line: int) -> CaptionJob:
    key = next((k for k in PATH_FIELDS if record.get(k)), None)
    if key is None:
        raise InputError(f"{src.name} line {line} names no video: give a column or field called one of {', '.join(PATH_FIELDS)}.")
    prompt = clean_text(str(record["prompt"])) if record.get("prompt") else None  # "\ud83d" in JSON
    return CaptionJob(_resolve(str(record[key]), base), prompt)


# -- what is done ---------------------------------------------------------------------------------
def path_key(path: str) -> str:
    """How paths are compared across runs: absolute and normalised."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


class CaptionWriter:
    """Appends JSON lines durably (one os.write + fsync each, so a line is whole or absent) and knows
    the paths already in the file. A half-written last line (a run killed mid-write) is cut off."""

    def __init__(self, path: str | os.PathLike, *, retry_errors: bool = False):
        self.path = Path(path)
        self.done: set[str] = set()
        self.errors: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_and_read(retry_errors)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair_and_read(self, retry_errors: bool) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("%s ends with a half-written line (an interrupted run): removing it", self.path)
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for n, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = path_key(record["path"])
            except (json.JSONDecodeError, KeyError, TypeError):
                log.warning("%s line %d is not a caption record: ignored", self.path, n)
                continue
            if "error" in record:
                self.errors.add(key)
                if retry_errors:
                    continue
            self.done.add(key)

    def is_done(self, path: str) -> bool:
        return path_key(path) in self.done

    def write(self, record: dict) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)
        self.done.add(path_key(record["path"]))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "CaptionWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_parquet(jsonl: str | os.PathLike, out: str | os.PathLike, chunk: int = 10_000) -> int:
    """All records of a caption JSONL as one Parquet file, streamed in chunks (settings kept as a JSON
    string column, so runs with different settings share one schema). Returns the number of rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("--parquet needs pyarrow: pip install -r requirements-ray.txt") from None
    schema = pa.schema([("path", pa.string()), ("caption", pa.string()), ("error", pa.string()),
                        ("model", pa.string()), ("settings", pa.string()), ("timestamps", pa.list_(pa.float64())),
                        ("duration", pa.float64()), ("seconds", pa.float64())])
    n, rows = 0, []
    with pq.ParquetWriter(str(out), schema) as writer, open(jsonl, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            rows.append({"path": r["path"], "caption": r.get("caption"), "error": r.get("error"),
                         "model": r.get("model"), "settings": json.dumps(r.get("settings", {})),
                         "timestamps": r.get("timestamps", []), "duration": r.get("duration"),
                         "seconds": r.get("seconds")})
            if len(rows) == chunk:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                n, rows = n + len(rows), []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += len(rows)
    return n
