"""The frames room's public names in one place, for the modules that import them from here.

A video file in, frames out: `read_video(path, n)` (the one-line convenience: PLLaVA's rule -> `Clip`),
`VideoDecoder` (metadata, frames by ordinal or by time, seek_mode "exact" | "approximate"), the
samplers (`segment_centred`, `every_seconds`, `keyframes_only`), `FrameBatch`, and the checks a server
runs before decoding (`check_file`, `content_key`). Each lives in the module its name says; only this
room imports av.
"""

from .batch import FrameBatch
from .checks import check_file, human_duration
from .content_key import content_key
from .decoder import SEEK_MODES, VideoDecoder, VideoMetadata
from .images import IMAGE_EXTENSIONS
from .read import Clip, read_video
from .samplers import every_seconds, every_seconds_indices, keyframes_only, sample_indices, segment_centred

__all__ = [
    "IMAGE_EXTENSIONS", "SEEK_MODES", "Clip", "FrameBatch", "VideoDecoder", "VideoMetadata", "check_file",
    "content_key", "every_seconds", "every_seconds_indices", "human_duration", "keyframes_only",
    "read_video", "sample_indices", "segment_centred",
]
