"""One decoded picture -> one upright RGB uint8 array, converted as the official decoder converts it.

A video frame (PyAV) is turned by its display matrix, converted from YUV as a whole frame (never
field by field: see `progressive`), and optionally resized by the caller's function (the official
PLLaVA resize) or shrunk inside swscale. A PIL image (stills, animation frames) goes the same way
through PIL. This module knows nothing about files, seeking or which frames are wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

Resize = Callable[[Image.Image], Image.Image]
_ROTATIONS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def shrunk(width: int, height: int, max_short_side: int | None) -> tuple[int, int] | None:
    """(width, height) with the short side brought down to max_short_side, or None if already small."""
    short = min(width, height)
    if max_short_side is None or short <= max_short_side:
        return None
    scale = max_short_side / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def quarter_turns(frame) -> int:
    """Quarter turns counter-clockwise the display matrix asks for (0 for other angles, with a warning)."""
    try:
        rotation = frame.rotation  # degrees counter-clockwise
    except Exception:  # noqa: BLE001 - a malformed display matrix must not lose the frame
        rotation = 0
    if rotation % 90:
        log.warning("ignoring a %s degree display rotation (only multiples of 90 are applied)", rotation)
        return 0
    return round(rotation / 90) % 4


def display_size(frame) -> tuple[int, int]:
    """(width, height) as shown: after the display rotation."""
    return (frame.height, frame.width) if quarter_turns(frame) % 2 else (frame.width, frame.height)


def progressive(frame):
    """The same picture without the interlaced flag. swscale converts a frame flagged interlaced field
    by field (each field's chroma apart), which differs from the official decoder's whole-frame
    conversion by up to ~150 levels on edges; a copy of the planes without the flag converts as it
    does. Colour tags travel with the copy; the display matrix does not (read it from the original)."""
    out = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for src, dst in zip(frame.planes, out.planes):
        rows_in = np.frombuffer(src, np.uint8).reshape(-1, src.line_size)  # (rows, line_size)
        rows_out = np.frombuffer(dst, np.uint8).reshape(-1, dst.line_size)
        n = min(src.line_size, dst.line_size)
        rows_out[:, :n] = rows_in[: rows_out.shape[0], :n]
    for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
        setattr(out, tag, getattr(frame, tag))
    return out


def frame_rgb(frame, max_short_side: int | None = None, resize: Resize | None = None) -> np.ndarray:
    """A PyAV video frame -> (H, W, 3) uint8, upright; resized by `resize` or shrunk to max_short_side."""
    k = quarter_turns(frame)
    if frame.interlaced_frame:
        frame = progressive(frame)
    if resize is not None:
        # FFmpeg converts to RGBX, which PIL maps without a copy (PIL keeps RGB as RGBX anyway, and
        # resamples each channel alike), so the one full-size frame exists once, in FFmpeg's buffer;
        # turned upright, resized by the caller, and only the small result becomes an array.
        plane = frame.reformat(format="rgb0").planes[0]
        im = Image.frombuffer("RGBX", (plane.width, plane.height), plane, "raw", "RGBX", plane.line_size, 1)
        out = resize(im.transpose(_ROTATIONS[k]) if k else im)
        return np.asarray(out.convert("RGB") if out.mode != "RGB" else out)  # (h, w, 3)
    size = shrunk(frame.width, frame.height, max_short_side)
    if size is None:
        arr = frame.to_ndarray(format="rgb24")  # (H, W, 3)
    else:  # scale inside swscale, from YUV: the full-size RGB picture is never made
        arr = frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")  # (h, w, 3)
    if k:
        arr = np.ascontiguousarray(np.rot90(arr, k=k))  # rot90 turns counter-clockwise
    return arr


def image_rgb(im: Image.Image, max_short_side: int | None = None, resize: Resize | None = None) -> np.ndarray:
    """A PIL image (already upright) -> (H, W, 3) uint8; resized by `resize` or shrunk to max_short_side."""
    im = im.convert("RGB")
    if resize is not None:
        return np.asarray(resize(im))  # (h, w, 3)
    size = shrunk(im.width, im.height, max_short_side)
    if size is not None:
        im = im.resize(size, Image.BICUBIC, reducing_gap=2.0)  # reducing_gap: box-reduce first, fast
    return np.asarray(im)  # (H, W, 3)


@dataclass(frozen=True)
class Convert:
    """How every decoded picture of one decoder becomes an array: at most one of `resize` (a function
    of an upright PIL image: the engine passes the official PLLaVA resize) and `max_short_side` (a fast
    shrink inside swscale, not the official pixels); neither keeps the full displayed size."""

    max_short_side: int | None = None
    resize: Resize | None = None

    def video(self, frame) -> np.ndarray:
        return frame_rgb(frame, self.max_short_side, self.resize)

    def image(self, im: Image.Image) -> np.ndarray:
        return image_rgb(im, self.max_short_side, self.resize)
