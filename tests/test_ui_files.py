"""The file rules on a real folder: the sweeper deletes what nobody holds once it is older than the
grace period (an unused upload, a thumbnail or heat map written for a page, a temporary file of an
aborted upload) and keeps what a session holds or must stay; the disk budget refuses what would not fit."""

from __future__ import annotations

import os
import time

import pytest

from pllava_demo.errors import ResourceError
from pllava_demo.ui.files import BUSY, DiskBudget, Sweeper, Uploads


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


def test_disk_budget(tmp_path):
    root = tmp_path / "gradio"
    write(root / ("a" * 64) / "v.mp4", size=600)
    disk = DiskBudget(root, 1000)
    assert disk.status() == {"upload_bytes": 600, "upload_budget_bytes": 1000}
    with disk.reserve(300):
        with pytest.raises(ResourceError, match=BUSY):
            with disk.reserve(200):  # 600 on disk + 300 in flight + 200 > 1000
                pass
    with disk.reserve(400):  # the first request finished: its room is free again
        pass
