"""A file's identity for caches: a hash of its bytes, independent of its name and mtime."""

from __future__ import annotations

import functools
import hashlib
import os


def content_key(path) -> str:
    """sha256 of the whole file, as 16 hex digits; independent of name and mtime. The whole file: the
    key is shared by every user's cache, so two files that differ anywhere must never share it (a copy
    altered only in the middle would otherwise be answered with another video's features). Remembered
    per (path, size, mtime) so an upload is hashed once (about 0.1 s for 200 MB)."""
    st = os.stat(path)
    return _content_key(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _content_key(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]
