"""A frame's size read from the file's header before anything is decoded: a 190 kB PNG can claim
13000x13000 pixels and cost a gigabyte once decoded. `check_pixels` refuses a still, an animation
or any video stream whose frames have more than `max_pixels` pixels.

Reads headers only (PIL's `open` and PyAV's stream parameters do not decode); knows nothing about
sampling, resizing or the model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import av
from PIL import Image

from ..errors import VideoError


def _image_sizes(p: Path) -> list[tuple[int, int]] | None:
    """(width, height) of a still or animation as PIL reads it from the header; None if PIL cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return [im.size]
    except Image.DecompressionBombError:
        return []  # past PIL's own refusal size: the reader refuses it at open, in its own words
    except Exception:  # not an image PIL knows: a video
        return None


def _stream_sizes(p: Path) -> list[tuple[int, int]]:
    """(width, height) of every video stream, from the container's stream parameters."""
    try:
        with av.open(str(p)) as container:
            return [(int(s.codec_context.width or 0), int(s.codec_context.height or 0)) for s in container.streams.video]
    except Exception:  # unreadable: the decoder says so in its own words
        return []


def check_pixels(path, max_pixels: int) -> None:
    """VideoError naming the size and the limit when a frame of `path` has more than `max_pixels` pixels."""
    p = Path(path)
    sizes = _image_sizes(p)
    if sizes is None:
        sizes = _stream_sizes(p)
    for width, height in sizes:
        if width * height > max_pixels:
            raise VideoError(f"The picture is {width}x{height} ({width * height:,}) pixels; "
                             f"the limit is {max_pixels:,} pixels per frame.")
