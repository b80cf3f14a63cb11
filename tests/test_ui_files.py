"""The file rules on a real folder: the sweeper deletes what nobody holds once it is older than the
grace period (an unused upload, a thumbnail or heat map written for a page, a temporary file of an
aborted upload) and keeps what a session holds or must stay; the disk budget refuses what would not fit."""

from __future__ import annotations

import os
import time

import pytest

from pllava_demo.errors import ResourceError
from pllava_demo.ui.files import UPLOAD_SPACE_FULL, ENTRY_BYTES, DiskBudget, Sweeper, Uploads


def write(path, size=100, age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_sweeper_deletes_only_old_unheld_files(tmp_path):
    root = tmp_path / "gradio"
    held = write(root / ("a" * 64) / "video.mp4", age=100)
    example = write(root / ("b" * 64) / "example.mp4", age=100)
    thumb = write(root / ("c" * 64) / "image.webp", age=100)  # a frame thumbnail gradio wrote for a page
    unused = write(root / ("d" * 64) / "never-used.mp4", age=100)
    temp = write(root / "tmpabc123", age=100)  # the upload route's temporary file of an aborted request
    young = write(root / ("e" * 64) / "just-now.mp4", age=0)
    outside = write(tmp_path / "elsewhere.txt", age=100)
    forgotten = []
    sweeper = Sweeper(root, lambda: {str(held), str(example)}, grace=10, forget=forgotten.append)
    gone = sweeper.sweep()
    assert sorted(gone) == sorted([thumb, unused, temp])
    assert held.exists() and example.exists() and young.exists() and outside.exists()
    assert not thumb.parent.exists()  # the emptied per-file folder goes too
    assert sorted(forgotten) == sorted(str(p) for p in (thumb, unused, temp)) and sweeper.deleted == 3
    assert sweeper.sweep(now=time.time() + 60) == [young]  # once it is old enough


def test_uploads_held_are_kept_until_released(tmp_path):
    root = tmp_path / "gradio"
    f = write(root / ("a" * 64) / "v.mp4", age=100)
    uploads = Uploads(root)
    owner = object()
    uploads.hold(owner, f)
    sweeper = Sweeper(root, lambda: {str(p) for p in uploads.held()}, grace=1)
    assert sweeper.sweep() == [] and f.exists()
    uploads.release(owner)
    assert not f.exists() and len(uploads) == 0


def test_disk_budget_counts_blocks_and_entries(tmp_path):
    """Small files cost what they take on disk (a block each, plus their entries), not their sizes;
    the tally moves with claims and added files, and is recounted only by `rescan`."""
    root = tmp_path / "gradio"
    files = [write(root / f"{k:064x}" / "v.mp4", size=8) for k in range(20)]
    block = os.stat(files[0]).st_blocks * 512
    disk = DiskBudget(root, 10**6, max_files=25)
    assert disk.used() == 0  # nothing counted before the first scan: no scan on a request's path
    used, n = disk.rescan()
    assert n == 20 and used == 20 * (block + 2 * ENTRY_BYTES) and used > 100 * 20 * 8
    assert disk.status() == {"uploads_full": False}  # no numbers to aim at
    room = disk.max_bytes - used
    with disk.reserve(room - 100):
        with pytest.raises(ResourceError, match=UPLOAD_SPACE_FULL):
            disk.claim(200)  # on disk + in flight + 200 > the budget
        assert disk.status() == {"uploads_full": False}
    disk.claim(room - 100)  # the first request finished: its room is free again
    disk.unclaim(room - 100)
    more = [write(root / f"{k:064x}" / "v.mp4", size=8) for k in range(20, 25)]
    disk.add(more)
    assert disk.files() == 25 and disk.used() == used + 5 * (block + 2 * ENTRY_BYTES)
    with pytest.raises(ResourceError, match=UPLOAD_SPACE_FULL):
        disk.room_for_files(1)  # 25 files: the count is full, however small they are
    assert disk.status() == {"uploads_full": True}
    for f in more:
        f.unlink()
    assert disk.rescan()[1] == 20
    disk.room_for_files(5)
