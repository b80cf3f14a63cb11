"""Every byte a visitor makes the server write, and when it goes: uploads held by the sessions using
them (deleted when the last one lets go), a sweeper for whatever nobody holds after a short grace
period (uploads refused before a handler ran, sent while the model was loading, or never used; the
frame thumbnails and heat maps written for the page), and a disk budget for the upload folder.

Knows nothing about gradio: the folder, what must be kept and what to forget are passed in
(upload_guard.py does the gradio side).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import ResourceError

log = logging.getLogger(__name__)

UPLOAD_SPACE_FULL = "The server is busy: its upload space is full. Please try again in a few minutes."


class Uploads:
    """The files people uploaded, each held by the studios using it, deleted when the last one lets
    go. Two sessions uploading the same bytes get the same path from gradio (it names the folder by
    content hash), hence the holders. Only files under `root` (gradio's upload folder) for which
    `is_upload(path)` says yes are ever deleted: never an example, never anything else on disk."""

    def __init__(self, root, is_upload: Callable[[str], bool] = lambda path: True,
                 forget: Callable[[str], None] = lambda path: None):
        self.root = Path(root).resolve()
        self.is_upload, self.forget = is_upload, forget
        self._holders: dict[Path, set[int]] = {}
        self._lock = threading.Lock()

    def _ours(self, path) -> Path | None:
        try:
            p = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        return p if p != self.root and p.is_relative_to(self.root) and self.is_upload(str(path)) else None

    def hold(self, studio, path) -> None:
        p = self._ours(path)
        if p is not None:
            with self._lock:
                self._holders.setdefault(p, set()).add(id(studio))

    def release(self, studio, keep=None) -> list[Path]:
        """Let go of every file `studio` holds except `keep`; delete those nobody holds any more."""
        keep = self._ours(keep) if keep else None
        doomed = []
        with self._lock:
            for p, holders in list(self._holders.items()):
                if p != keep and id(studio) in holders:
                    holders.discard(id(studio))
                    if not holders:
                        del self._holders[p]
                        doomed.append(p)
        for p in doomed:
            _delete_upload(p, self.root)
            self.forget(str(p))
        return doomed

    def drop(self, path) -> None:
        """Delete an upload no studio will take (refused before one could hold it), unless one holds it."""
        p = self._ours(path)
        with self._lock:
            if p is None or p in self._holders:
                return
        _delete_upload(p, self.root)
        self.forget(str(p))

    def __len__(self) -> int:
        return len(self._holders)

    def held(self) -> set[Path]:
        with self._lock:
            return set(self._holders)


def _delete_upload(p: Path, root: Path) -> None:
    try:
        p.unlink(missing_ok=True)
        if p.parent != root and p.parent.is_relative_to(root) and not any(p.parent.iterdir()):
            p.parent.rmdir()  # gradio's per-upload folder
    except OSError as e:  # a file we cannot delete must not break closing a session
        log.warning("could not delete the upload %s: %s", p, e)


def _files(root: Path) -> Iterable[os.DirEntry]:
    """Files directly in root (the upload route's temporary files) and one folder down (gradio's
    <content hash>/<name>); nothing deeper is ever written there by gradio."""
    with contextlib.suppress(FileNotFoundError), os.scandir(root) as top:
        for entry in top:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    yield entry
                elif entry.is_dir(follow_symlinks=False):
                    with os.scandir(entry.path) as sub:
                        yield from (e for e in sub if e.is_file(follow_symlinks=False))


def _cost(entry: os.DirEntry) -> int:
    """What a file takes on disk: its allocated blocks (a file of 8 bytes still takes a block)."""
    st = entry.stat(follow_symlinks=False)
    return max(int(getattr(st, "st_blocks", 0)) * 512, st.st_size)


ENTRY_BYTES = 4096  # a directory entry and its inode, counted for every file and folder: small files add up


class DiskBudget:
    """The upload folder's disk use, counted as allocated blocks plus a cost per file and folder, and its
    number of files. The tally is kept incrementally: a full scan only happens off the request path
    (`rescan`, run by the sweeper's thread), and in between, bytes arriving in requests are claimed as
    they come (`claim`) and files the app or an upload route wrote are added as they appear (`add`).
    A claim that would pass `max_bytes`, or a file past `max_files`, is refused with UPLOAD_SPACE_FULL."""

    def __init__(self, root, max_bytes: int, max_files: int = 10_000):
        self.root, self.max_bytes, self.max_files = Path(root), int(max_bytes), int(max_files)
        self._scanned_bytes = self._scanned_files = 0  # as of the last rescan
        self._added_bytes = self._added_files = 0  # written since the last rescan
        self._reserved = 0  # claimed by requests still sending
        self._lock = threading.Lock()
        self.debug_counts: Callable[[], dict] = dict  # more counters for an operator's /status (--debug-stats)

    def rescan(self) -> tuple[int, int]:
        """Count the folder again (off the event loop: the sweeper's thread); returns (bytes, files)."""
        total, files, folders = 0, 0, set()
        for entry in _files(self.root):
            with contextlib.suppress(OSError):
                total += _cost(entry) + ENTRY_BYTES
                files += 1
                folders.add(os.path.dirname(entry.path))
        total += ENTRY_BYTES * len(folders)
        with self._lock:
            self._scanned_bytes, self._scanned_files = total, files
            self._added_bytes = self._added_files = 0
        return total, files

    def used(self) -> int:
        with self._lock:
            return self._scanned_bytes + self._added_bytes

    def files(self) -> int:
        with self._lock:
            return self._scanned_files + self._added_files

    def _check(self, more_bytes: int, more_files: int) -> None:  # under the lock
        if self._scanned_bytes + self._added_bytes + self._reserved + more_bytes > self.max_bytes:
            raise ResourceError(UPLOAD_SPACE_FULL)
        if self._scanned_files + self._added_files + more_files > self.max_files:
            raise ResourceError(UPLOAD_SPACE_FULL)

    def claim(self, n: int) -> None:
        """n more bytes arrived in a request: room for them, or ResourceError(UPLOAD_SPACE_FULL). Freed by `unclaim`."""
        with self._lock:
            self._check(n, 0)
            self._reserved += n

    def unclaim(self, n: int) -> None:
        with self._lock:
            self._reserved -= n

    def add(self, paths: Iterable) -> None:
        """Files just written under the folder (an upload's, a download's): counted until the next rescan."""
        n_bytes = n_files = 0
        for p in paths:
            with contextlib.suppress(OSError):
                st = os.stat(p, follow_symlinks=False)
                n_bytes += max(int(getattr(st, "st_blocks", 0)) * 512, st.st_size) + 2 * ENTRY_BYTES
                n_files += 1
        with self._lock:
            self._added_bytes += n_bytes
            self._added_files += n_files

    def room_for_files(self, n: int) -> None:
        """ResourceError(UPLOAD_SPACE_FULL) unless n more files fit."""
        with self._lock:
            self._check(0, n)

    @contextlib.contextmanager
    def reserve(self, n: int):
        """Room for n more bytes while the block runs, or ResourceError(UPLOAD_SPACE_FULL)."""
        self.claim(n)
        try:
            yield
        finally:
            self.unclaim(n)

    def status(self) -> dict:
        """Only whether the folder is full: the room left is nothing a visitor should aim at."""
        with self._lock:
            full = (self._scanned_bytes + self._added_bytes + self._reserved >= self.max_bytes
                    or self._scanned_files + self._added_files >= self.max_files)
        return {"uploads_full": full}


class Sweeper:
    """Every `interval` seconds, deletes the files under `root` that are older than `grace` seconds
    (by modification time, so a file still being written is young) and not in `keep()`."""

    def __init__(self, root, keep: Callable[[], set[str]], grace: float,
                 forget: Callable[[str], None] = lambda path: None, disk: DiskBudget | None = None):
        self.root, self.keep, self.grace, self.forget = Path(root).resolve(), keep, float(grace), forget
        self.disk = disk  # recounted after each sweep, on this thread
        self.deleted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: float | None = None) -> list[Path]:
        now = time.time() if now is None else now
        keep = {os.path.realpath(p) for p in self.keep()}
        gone = []
        for entry in list(_files(self.root)):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < self.grace or os.path.realpath(entry.path) in keep:
                    continue
            except OSError:
                continue
            p = Path(entry.path)
            _delete_upload(p, self.root)
            self.forget(entry.path)
            gone.append(p)
        self.deleted += len(gone)
        if self.disk is not None:
            self.disk.rescan()
        return gone

    def start(self, interval: float) -> "Sweeper":
        def loop():
            while not self._stop.wait(interval):
                try:
                    self.sweep()
                except Exception:  # the sweeper must outlive any one bad file
                    log.exception("sweeping the upload folder failed")

        if self._thread is None:
            self._thread = threading.Thread(target=loop, name="pllava-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
