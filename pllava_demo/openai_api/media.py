"""A media URL of a request -> a local file the engine can read, for the length of one request.

- `data:` URLs (base64) are written to a private folder, one file per content (named by its hash and
  shared by requests that send the same bytes at once), deleted when the last request using it ends;
- a local path (`/abs/path` or `file://`) only when the server names a folder (`--allowed-media-dir`)
  and the path, resolved (links and `..` followed), lies inside it;
- `http(s)` only with `--allow-media-urls`: one GET with a timeout, redirects followed only on the same
  scheme, host and port (at most 3), the body cut off past the file size limit.
Every file is also held to the page's limits by the engine (size, duration, decode time).

Knows no HTTP framework of its own (httpx only as a client) and no engine.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from ..settings import IMAGE_EXTENSIONS, UPLOAD_VIDEO_EXTENSIONS
from .errors import ApiError, bad
from .request import MediaRef

SUFFIXES = {"video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
            "video/x-msvideo": ".avi", "image/gif": ".gif", "image/png": ".png", "image/jpeg": ".jpg",
            "image/webp": ".webp", "image/bmp": ".bmp"}
KNOWN = frozenset(UPLOAD_VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)  # what the page takes, too
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class MediaPolicy:
    """Where media may come from, and how big it may be."""

    max_mb: float = 200.0
    allowed_dir: Path | None = None  # local files: only under this folder (None: no local files)
    allow_urls: bool = False  # http(s) downloads
    timeout_s: float = 30.0  # a download: connect and each read

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)


class MediaFiles:
    """Files written for requests, by content; a file is deleted when no request holds it."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="pllava-openai-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._holders: dict[Path, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, data: bytes, suffix: str):
        path = self.root / (hashlib.sha256(data).hexdigest()[:32] + suffix)
        with self._lock:
            if path not in self._holders:
                tmp = path.with_suffix(path.suffix + ".part")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            self._holders[path] = self._holders.get(path, 0) + 1
        try:
            yield path
        finally:
            with self._lock:
                self._holders[path] -= 1
                if not self._holders[path]:
                    del self._holders[path]
                    path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._holders)


def _too_big(policy: MediaPolicy, param: str) -> ApiError:
    return ApiError(413, f"The media file is over the server's limit of {policy.max_mb:g} MB.", param,
                    "media_too_large")


@contextlib.contextmanager
def resolve(ref: MediaRef, policy: MediaPolicy, files: MediaFiles):
    """Yields the local path of the request's media; its temporary file (if any) goes when the block ends."""
    scheme = urlsplit(ref.url).scheme.lower() if "://" in ref.url or ref.url.startswith("data:") else ""
    if scheme == "data":
        data, suffix = _data_url(ref, policy)
        with files.hold(data, suffix) as path:
            yield path
    elif scheme in ("http", "https"):
        if not policy.allow_urls:
            raise bad("Media URLs are off on this server (it runs without --allow-media-urls); send the file as a "
                      "data: URL.", ref.param)
        data, suffix = _download(ref, policy)
        with files.hold(data, suffix) as path:
            yield path
    elif scheme in ("", "file"):
        yield _local(ref, policy)
    else:
        raise bad(f"Unsupported media URL scheme {scheme!r}: use data:, http(s): or a local path.", ref.param)


def _suffix(mime: str, ref: MediaRef) -> str:
    suffix = SUFFIXES.get(mime.lower().strip())
    if suffix is None:
        raise bad(f"Unsupported media type {mime!r}; use one of {', '.join(SUFFIXES)}.", ref.param)
    return suffix


def _data_url(ref: MediaRef, policy: MediaPolicy) -> tuple[bytes, str]:
    head, sep, payload = ref.url[5:].partition(",")
    mime, *params = head.split(";")
    if not sep or "base64" not in params:
        raise bad("A data: URL must be base64, like data:video/mp4;base64,AAAA...", ref.param)
    suffix = _suffix(mime, ref)
    if len(payload) * 3 // 4 > policy.max_bytes + 3:
        raise _too_big(policy, ref.param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad("The data: URL is not valid base64.", ref.param) from None
    if not data:
        raise bad("The data: URL holds no bytes.", ref.param)
    return data, suffix


def _local(ref: MediaRef, policy: MediaPolicy) -> Path:
    if policy.allowed_dir is None:
        raise bad("Local media paths are off on this server (it runs without --allowed-media-dir); send the file "
                  "as a data: URL.", ref.param)
    raw = unquote(urlsplit(ref.url).path) if ref.url.lower().startswith("file:") else ref.url
    root = policy.allowed_dir.resolve()
    path = Path(raw)
    if not path.is_absolute():
        path = root / path
    path = path.resolve()
    if not path.is_relative_to(root) or not path.is_file():
        # the same sentence for "outside" and "missing": the server's files are not probed through this
        raise bad("The media path is not a file inside the server's allowed media folder.", ref.param)
    return path


def _download(ref: MediaRef, policy: MediaPolicy) -> tuple[bytes, str]:
    import httpx

    url, origin = ref.url, urlsplit(ref.url)
    try:
        with httpx.Client(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url) as r:
                    if r.is_redirect:
                        target = urljoin(url, r.headers.get("location", ""))
                        to = urlsplit(target)
                        if (to.scheme, to.hostname, to.port) != (origin.scheme, origin.hostname, origin.port):
                            raise bad("The media URL redirects to another host; only redirects on the same host "
                                      "are followed.", ref.param)
                        url = target
                        continue
                    if r.status_code != 200:
                        raise bad(f"The media URL answered HTTP {r.status_code}.", ref.param)
                    length = r.headers.get("content-length")
                    if length and length.isdigit() and int(length) > policy.max_bytes:
                        raise _too_big(policy, ref.param)
                    data = bytearray()
                    for chunk in r.iter_bytes():
                        data += chunk
                        if len(data) > policy.max_bytes:
                            raise _too_big(policy, ref.param)
                    return bytes(data), _url_suffix(url, r.headers.get("content-type", ""), ref)
    except httpx.TimeoutException:
        raise bad(f"The media URL did not answer within {policy.timeout_s:g} s.", ref.param) from None
    except httpx.HTTPError as e:
        raise bad(f"The media URL could not be fetched ({type(e).__name__}).", ref.param) from None
    raise bad(f"The media URL redirects more than {MAX_REDIRECTS} times.", ref.param)


def _url_suffix(url: str, content_type: str, ref: MediaRef) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in KNOWN:
        return suffix
    mime = content_type.split(";")[0]
    if mime in SUFFIXES:
        return SUFFIXES[mime]
    return ".png" if ref.kind == "image" else ".mp4"  # the decoders read the bytes, not the name
