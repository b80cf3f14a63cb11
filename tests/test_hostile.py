"""Hostile inputs against the REAL engine (tiny random checkpoint, real decoding): every file of a
generated corpus and every odd question gives either an answer or a `PllavaError` whose message is
one readable sentence, and the SAME session then loads a good video and answers.

Nothing is downloaded: videos come from tests/videos.py writers, the rest from byte surgery.
Each case states what it must give ("ok", or an error matching a pattern, or "either" for damage
whose outcome depends on where the cut falls), so a change of behaviour shows up here.
"""

import dataclasses
import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pllava_demo.config import GenerationSettings
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError, PllavaError, VideoError
from videos import (counter_frame, video_path, write_animated_webp, write_audio_only, write_image,
                    write_long_video, write_video)

FAST = GenerationSettings(max_new_tokens=4, min_new_tokens=4)
SMALL_POOL = (4, 6, 6)  # 144 visual tokens: the corpus is about decoding, not about prefill speed
# Raw library words a person must never see (lower case).
JARGON = ("avcodec", "libav", "ffmpeg", "errno", "moov", "traceback", "exception", "invalid data",
          "decompressionbomb", "pyav", "nonetype", "  file ")


def assert_readable(err: BaseException) -> None:
    msg = str(err)
    assert isinstance(err, PllavaError), f"{type(err).__name__}: {msg}"
    assert msg.endswith(".") and "\n" not in msg and 10 < len(msg) < 300, msg
    assert not any(word in msg.lower() for word in JARGON), msg


# ------------------------------------------------------------------------------------ the corpus


def _small(d, name, **kw):
    return write_video(Path(d) / name, width=64, height=48, **kw)


def _text(d):
    p = Path(d) / "notes.mp4"
    p.write_text("These are my meeting notes, not a video.\n" * 20)
    return p


def _html(d):
    p = Path(d) / "download.mp4"
    p.write_text("<!DOCTYPE html><html><head><title>404</title></head><body>Not Found</body></html>")
    return p


def _zero(d):
    p = Path(d) / "zero.mp4"
    p.write_bytes(b"")
    return p


def _noise(d):
    p = Path(d) / "noise.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    return p


def _truncated(frac, faststart):
    def build(d):
        whole = write_video(Path(d) / "whole.mp4", n_frames=60, width=96, height=64, gop=12, faststart=faststart)
        data = whole.read_bytes()
        p = Path(d) / "cut.mp4"
        p.write_bytes(data[: int(len(data) * frac)])
        return p
    return build


def _without_moov(faststart):
    """The index box cut out of the file entirely (what a crashed recorder leaves)."""
    def build(d):
        data = write_video(Path(d) / "whole.mp4", n_frames=24, width=64, height=48, faststart=faststart).read_bytes()
        at = data.find(b"moov") - 4
        size = struct.unpack(">I", data[at : at + 4])[0]
        p = Path(d) / "no_index.mp4"
        p.write_bytes(data[:at] + data[at + size :])
        return p
    return build


def _garbage_middle(d):
    p = write_video(Path(d) / "garbled.mp4", n_frames=96, width=96, height=64, gop=12, faststart=True)
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 600] = np.random.default_rng(1).integers(0, 256, 600, dtype=np.uint8).tobytes()
    p.write_bytes(bytes(data))
    return p


def _tiny_h264(p: Path, *, n_frames: int, fps: int = 24, opts: dict | None = None, **open_kw) -> Path:
    """64x48 counter frames as h264 into whatever av.open(..., **open_kw) writes."""
    with av.open(str(p), "w", **open_kw) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", **(opts or {})})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(counter_frame(k, 64, 48), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return p


def _raw_h264(d, name="stream.h264", n_frames=48, fps=24, gop=None):
    """An elementary stream: no container, so no duration and no frame count in any header."""
    opts = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if gop else {}
    return _tiny_h264(Path(d) / name, n_frames=n_frames, fps=fps, opts=opts, format="h264")


def _live_mkv(d):
    """Matroska written as a live stream: no duration in the header."""
    return _tiny_h264(Path(d) / "live.mkv", n_frames=30, format="matroska", options={"live": "1"})


def _png_bomb(d):
    """A PNG whose header claims 40000 x 40000 pixels (1.6 G): PIL refuses it before decoding."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    p = Path(d) / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return p


def _odd_path(d):
    folder = Path(d) / "my vidéos — 日本 🎬"
    folder.mkdir()
    return write_video(folder / "clip (final) ünïcode 📹.mp4", n_frames=24, width=64, height=48)


VFR_PTS = [0.0, 0.05, 0.1, 0.5, 0.55, 1.5, 1.6, 1.61, 1.62, 2.0, 2.1, 2.2, 3.0, 3.5, 3.6, 3.7, 4.0, 4.04, 4.08, 6.0]

# id -> (builder(dir) -> path, frames asked, expected: "ok" | "either" | regex of the error message)
CORPUS = {
    "zero-byte": (_zero, 8, r"^The file 'zero\.mp4' is empty \(0 bytes\)\.$"),
    "missing": (lambda d: Path(d) / "gone.mp4", 8, r"does not exist"),
    "folder": (lambda d: Path(d), 8, r"is not a file"),
    "text-as-mp4": (_text, 8, r"is a text file, not a video"),
    "html-as-mp4": (_html, 8, r"is a web page, not a video"),
    "random-bytes": (_noise, 8, r"not a video or image that can be read"),
    **{f"truncated-{int(f * 100)}%{'-faststart' if fs else ''}": (_truncated(f, fs), 8, "either")
       for fs in (False, True) for f in (0.02, 0.3, 0.6, 0.95)},
    "moov-cut-out": (_without_moov(False), 8, r"not a video or image that can be read"),
    "moov-cut-out-faststart": (_without_moov(True), 8, r"not a video or image that can be read"),
    "garbage-in-middle": (_garbage_middle, 8, "ok"),
    "audio-only": (lambda d: write_audio_only(Path(d) / "voice.m4a"), 8, r"has no video track; it contains only audio\.$"),
    "one-frame": (lambda d: _small(d, "one.mp4", n_frames=1), 8, "ok"),
    "0.1-second": (lambda d: _small(d, "tenth.mp4", n_frames=3, fps=30), 8, "ok"),
    "3-frames-32-asked": (lambda d: _small(d, "three.mp4", n_frames=3), 32, "ok"),
    "aspect-4000x16": (lambda d: write_video(Path(d) / "strip.mp4", n_frames=8, width=4000, height=16), 8, "ok"),
    "rotated-phone": (lambda d: _small(d, "phone.mp4", n_frames=24, rotation=90), 8, "ok"),
    "variable-frame-rate": (lambda d: _small(d, "vfr.mp4", n_frames=20, pts_seconds=VFR_PTS), 8, "ok"),
    "two-hours": (lambda d: write_long_video(Path(d) / "two_hours.mp4", seconds=7200, fps=1, width=64, height=48,
                                             keyframe_every_s=600), 8, "ok"),
    "raw-h264-no-duration": (_raw_h264, 8, "ok"),
    "live-mkv-no-duration": (_live_mkv, 8, "ok"),
    **{f"codec-{c}": (lambda d, c=c: write_video(video_path(d, "c", c), codec=c, n_frames=12, width=64, height=48), 8, "ok")
       for c in ("vp9", "av1", "hevc", "mjpeg", "gif", "mpeg4")},
    "animated-webp": (lambda d: write_animated_webp(Path(d) / "anim.webp"), 8, "ok"),
    "still-jpeg": (lambda d: write_image(Path(d) / "photo.jpg", exif_orientation=6), 8, "ok"),
    "png-bomb": (_png_bomb, 8, r"^The image 'bomb\.png' is too large to open safely\.$"),
    "spaces-and-unicode-path": (_odd_path, 8, "ok"),
}


@pytest.fixture(scope="module")
def eng(tiny_official):
    return Engine.load(tiny_official, device="cpu", quantization="none")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("good") / "good.mp4", n_frames=24, width=96, height=64, pattern="colour")


def answer(session, question="What happens in the video?", **kw) -> str:
    text = "".join(session.ask(question, pooling_shape=SMALL_POOL, settings=FAST, **kw))
    assert session.turns and session.turns[-1].question == question.strip() and not session.turns[-1].stopped
    return text


def recovers(session, good) -> None:
    """The session that just failed (or answered) takes a good video and answers about it."""
    vf = session.set_video(good, 4)
    assert vf.clip.source == str(good)
    answer(session, "And this one?")


def outcome(session, path, frames):
    """'ok' (frames read, question answered) or the readable error."""
    try:
        vf = session.set_video(path, frames)
    except PllavaError as e:
        assert_readable(e)
        return e
    still = vf.clip.fps == 0.0  # a still image is a one-frame clip whatever was asked
    assert vf.features.shape[0] == vf.clip.frames.shape[0] == (1 if still else frames)
    answer(session)
    return "ok"


@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_file_gives_answer_or_one_sentence_then_session_recovers(eng, good, tmp_path, case):
    build, frames, expected = CORPUS[case]
    session = eng.new_session()
    got = outcome(session, build(tmp_path), frames)
    if expected == "ok":
        assert got == "ok", f"{case}: {got}"
    elif expected != "either":
        assert got != "ok", f"{case} was read, expected an error"
        assert session.video is None and session.turns == []  # a refused file changes nothing
        assert re.search(expected, str(got)), str(got)
    recovers(session, good)


def test_a_failed_upload_keeps_the_current_video_and_chat(eng, good, tmp_path):
    session = eng.new_session()
    session.set_video(good, 4)
    answer(session)
    with pytest.raises(PllavaError) as e:
        session.set_video(_html(tmp_path), 4)
    assert_readable(e.value)
    assert session.video.clip.source == str(good) and len(session.turns) == 1
    answer(session, "Still there?")


def _peak_bytes(fn):
    """Peak numpy/Python allocation while fn runs (the RGB frames and their preprocessing)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_8k_frames_are_shrunk_while_decoding_so_memory_stays_small(eng, good, tmp_path):
    from pllava_demo.frames.preprocess import official_resize
    from pllava_demo.frames.video import read_video

    path = write_long_video(tmp_path / "8k.mp4", seconds=0.125, fps=16, width=7680, height=4320)  # 2 frames
    # One full-size RGB frame is 7680 x 4320 x 3 = 95 MB; 16 of them 1.6 GB. Each frame goes from
    # FFmpeg's buffer to PIL and is resized there (the engine's path): no full-size numpy array.
    clip, peak = _peak_bytes(lambda: read_video(path, 16, resize=official_resize))
    assert peak < 60 * 2**20, f"read_video peak {peak / 2**20:.0f} MB: a full-size frame was made"
    assert clip.frames.shape == (16, 360, 640, 3) and (clip.width, clip.height) == (7680, 4320)
    session = eng.new_session()
    vf, peak = _peak_bytes(lambda: session.set_video(path, 16))
    assert peak < 200 * 2**20, f"set_video peak {peak / 2**20:.0f} MB"
    assert vf.clip.frames.shape == clip.frames.shape and vf.nbytes < 64 * 2**20
    answer(session)
    recovers(session, good)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_still_image_is_read_small(eng, good, tmp_path):
    path = tmp_path / "huge.png"  # 108 Mpx: over PIL's warning size, under its refusal size
    Image.new("RGB", (12000, 9000), (90, 120, 200)).save(path, compress_level=1)
    session = eng.new_session()
    with pytest.raises(VideoError, match=r"^The picture is 12000x9000 \(108,000,000\) pixels; the limit is 33,177,600"):
        session.set_video(path, 8)  # --max-pixels (8K by default), from the header: nothing decoded
    default = eng.limits
    eng.limits = dataclasses.replace(default, max_pixels=12000 * 9000)  # an operator who allows it
    try:
        vf = session.set_video(path, 8)
    finally:
        eng.limits = default
    assert vf.clip.frames.shape == (1, 480, 640, 3)  # PllavaProcessor's size for 12000x9000
    answer(session)
    recovers(session, good)


def test_read_video_keeps_full_resolution_unless_asked(tmp_path):
    from pllava_demo.frames.video import read_video

    path = write_video(tmp_path / "v.mp4", n_frames=4, width=1280, height=720)
    assert read_video(path, 2).frames.shape == (2, 720, 1280, 3)
    assert read_video(path, 2, max_short_side=360).frames.shape == (2, 360, 640, 3)
    assert read_video(path, 2, max_short_side=720).frames.shape == (2, 720, 1280, 3)
    phone = write_video(tmp_path / "p.mp4", n_frames=4, width=1280, height=720, rotation=90)
    assert read_video(phone, 2, max_short_side=360).frames.shape == (2, 640, 360, 3)  # upright, then small


# ---------------------------------------------------------------------------------- the questions


@pytest.mark.parametrize("question, pattern", [
    ("", r"^Please type a question first\.$"),
    (" \n\t ", r"^Please type a question first\.$"),
    ("x" * 100_000, r"^The question is 100,000 characters long; the limit is 4,000\.$"),
    ("why? " * 20_480, r"^The question is 102,3\d\d characters long; the limit is 4,000\.$"),
])
def test_bad_questions_are_refused_before_any_work(eng, good, question, pattern):
    session = eng.new_session()
    session.set_video(good, 4)
    before = eng.stats["prefills"]
    with pytest.raises(InputError, match=pattern) as e:
        session.ask(question)
    assert_readable(e.value)
    assert eng.stats["prefills"] == before and session.turns == []
    answer(session)


def test_a_question_that_fills_the_context_window_is_refused_or_answered_short(eng, good):
    session = eng.new_session()
    session.set_video(good, 16)  # default pooling: 2304 of the 4096 tokens
    words = "describe the street the people the dog and the kitchen in every detail please ".split()
    question = " ".join(words[i % len(words)] for i in range(10_000))[:4000]  # the longest allowed
    try:
        text = "".join(session.ask(question, settings=GenerationSettings(max_new_tokens=1024, min_new_tokens=4)))
    except InputError as e:
        assert_readable(e)
        assert "context window" in str(e)
    else:
        assert session.notice and "limited to" in session.notice and text is not None
    answer(session)


def test_a_chat_that_overflows_the_context_keeps_working(eng, good):
    session = eng.new_session()
    session.set_video(good, 16)
    long_q = "please describe everything about the street and the people " * 40  # ~2.4k chars
    for _ in range(6):
        "".join(session.ask(long_q, settings=GenerationSettings(max_new_tokens=64, min_new_tokens=4)))
    assert session.notice and "oldest turn" in session.notice and len(session.turns) == 6
    recovers(session, good)
