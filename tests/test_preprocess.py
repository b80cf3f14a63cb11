"""clip_preprocess against transformers' CLIPImageProcessor (PIL backend) on real decoded frames.

Knows nothing about the model: only frames in, tensors out. The reference processor is built in
code (no download)."""

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor

from pllava_demo.frames.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess, resize_output_size
from pllava_demo.frames.video import read_video
from tests.videos import write_video


def reference(frames: np.ndarray) -> torch.Tensor:
    proc = CLIPImageProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, do_resize=True,
        do_center_crop=True, do_normalize=True, do_rescale=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    )
    out = proc(images=list(frames), return_tensors="np")["pixel_values"]
    return torch.from_numpy(np.asarray(out, dtype=np.float32))


@pytest.mark.parametrize("width,height", [(640, 360), (333, 500), (200, 120)])
def test_matches_transformers_on_decoded_frames(tmp_path, width, height):
    path = write_video(tmp_path / "c.mp4", width=width, height=height, n_frames=12, pattern="colour")
    frames = read_video(path, 4).frames  # (4, H, W, 3)
    assert frames.shape == (4, height, width, 3)
    ours = clip_preprocess(frames)
    ref = reference(frames)
    assert ours.dtype == torch.float32 and ours.shape == (4, 3, 336, 336)
    assert (ours - ref).abs().max().item() <= 1e-3


def test_resize_rule_is_transformers():
    assert resize_output_size(360, 640, 336) == (336, int(336 * 640 / 360))
    assert resize_output_size(500, 333, 336) == (int(336 * 500 / 333), 336)
    assert resize_output_size(100, 100, 336) == (336, 336)


def test_extreme_aspect_ratio_is_bounded_and_centred():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, size=(16, 4000, 3), dtype=np.uint8)
    wide[:, 1999:2001] = 255  # 2 source px -> 42 output px: a bar in the middle of the crop
    out = clip_preprocess(wide)
    assert out.shape == (1, 3, 336, 336) and torch.isfinite(out).all()
    col = out[0].mean(dim=(0, 1))  # (336,) mean over channels and rows
    assert int(col.argmax()) in range(150, 186)
    # the capped path shows the same region as transformers' full-size resize, up to resampling phase
    assert (out - reference(wide[None])).abs().mean().item() < 0.05
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    assert clip_preprocess(tall).shape == (1, 3, 336, 336)


def test_tiny_image_upscales_and_single_frame_accepted():
    tiny = np.full((5, 7, 3), 200, dtype=np.uint8)
    out = clip_preprocess(tiny)  # (H, W, 3) is taken as one frame
    assert out.shape == (1, 3, 336, 336)
    assert (out - reference(tiny[None])).abs().max().item() <= 1e-3


def test_rejects_wrong_input():
    with pytest.raises(ValueError, match="uint8"):
        clip_preprocess(np.zeros((2, 8, 8, 3), dtype=np.float32))


# ------------------------------------------------- the official two-step chain on real-size video


def official_longshort(frames: list[np.ndarray]) -> list[np.ndarray]:
    """PllavaProcessor.resize_crop_longshort for one video, restated with transformers' own resize
    helpers (PIL bicubic on uint8): long side capped at 640, short side from the aspect ratio, floored
    at 336, then its slice of the long side."""
    from transformers.image_transforms import get_resize_output_image_size, resize
    from transformers.image_utils import ChannelDimension, PILImageResampling

    last = ChannelDimension.LAST
    h, w = frames[0].shape[:2]
    rate = max(h, w) / min(h, w)
    longest = min(640, max(h, w))
    short = max(min(min(h, w), int(longest / rate)), 336)
    out_size = (int(short * rate), short) if h > w else (short, int(short * rate))
    out = []
    for frame in frames:
        size = get_resize_output_image_size(frame, size=short, default_to_square=False, max_size=9999,
                                            input_data_format=last)
        if min(size) < 336:
            size = get_resize_output_image_size(frame, size=short, default_to_square=False, input_data_format=last)
        r = resize(frame, size=size, resample=PILImageResampling.BICUBIC, input_data_format=last)
        overhead = (max(r.shape[:2]) - max(out_size)) // 2
        cut = slice(overhead // 2, overhead // 2 + max(out_size))
        out.append(r[cut] if r.shape[0] > r.shape[1] else r[:, cut])
    return out


def decoded_full_size(path, indices) -> list[np.ndarray]:
    """The same RGB frames a decord reader would return (PyAV, every frame, full size)."""
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return [frames[i] for i in indices]


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    d = tmp_path_factory.mktemp("textured")
    sizes = {"720p": (1280, 720), "1080p": (1920, 1080), "portrait": (720, 1280), "4k": (3840, 2160)}
    return {name: (write_video(d / f"{name}.mp4", width=w, height=h, n_frames=3, fps=6, pattern="texture"), (w, h))
            for name, (w, h) in sizes.items()}


@pytest.mark.parametrize("name", ["720p", "1080p", "portrait", "4k"])
def test_pixel_values_are_the_official_processors(textured, name):
    """What the captioner and the engine feed the model equals PllavaProcessor + CLIPImageProcessor
    applied to the same decoded full-size frames."""
    from pllava_demo.caption.captioner import prepare_video
    from pllava_demo.caption.records import CaptionJob

    path, (w, h) = textured[name]
    ours = prepare_video(CaptionJob(str(path)), 2).pixels  # (2, 3, 336, 336)
    ref = reference(np.stack(official_longshort(decoded_full_size(path, [0, 1]))))
    assert ours.shape == ref.shape == (2, 3, 336, 336)
    d = (ours - ref).abs()
    assert d.mean().item() <= 2e-3 and d.max().item() <= 0.06, (d.mean().item(), d.max().item())


def test_engine_encodes_the_official_pixels(engine, textured):
    path, _ = textured["1080p"]
    vf = engine.prepare_video(path, 2)
    assert list(vf.clip.indices) == [0, 1] and vf.clip.frames.shape == (2, 360, 640, 3)
    ref = reference(np.stack(official_longshort(decoded_full_size(path, [0, 1]))))
    want = engine.model.encode_frames(ref.to(engine.model.dtype if hasattr(engine.model, "dtype") else torch.float32))
    torch.testing.assert_close(vf.features.float().cpu(), want.float().cpu(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("width,height", [(640, 480), (1920, 1088), (51, 21), (320, 240), (1080, 2340)])
def test_official_resize_matches_the_restated_processor(width, height):
    from PIL import Image

    from pllava_demo.frames.preprocess import official_resize

    frame = np.asarray(Image.fromarray(np.random.default_rng(width).integers(0, 256, (height, width, 3), np.uint8)))
    ours = np.asarray(official_resize(Image.fromarray(frame)))
    (ref,) = official_longshort([frame])
    assert ours.shape == ref.shape and np.array_equal(ours, ref)


def test_engine_caches_per_time_range(engine, tmp_path):
    """A time range is part of the cache key: another range is another clip, the same range a hit."""
    path = write_video(tmp_path / "range.mp4", n_frames=48, fps=24, width=64, height=48)
    whole = engine.prepare_video(path, 4)
    part = engine.prepare_video(path, 4, start_s=1.0, end_s=2.0)
    assert part.clip.time_range == (1.0, 2.0) and min(part.clip.indices) >= 24
    assert list(part.clip.indices) != list(whole.clip.indices)
    hits = engine.stats["feature_cache_hits"]
    again = engine.prepare_video(path, 4, start_s=1.0, end_s=2.0)
    assert again.features is part.features and list(again.clip.indices) == list(part.clip.indices)
    assert engine.stats["feature_cache_hits"] == hits + 1
    assert not torch.equal(engine.visual_tokens(part), engine.visual_tokens(whole))


def test_phone_video_is_turned_upright_then_given_the_official_pixels(tmp_path):
    """The rotation flag is honoured (as decord 0.6.0 honours it: tests/test_decord_reference.py); the
    official chain then runs on the upright frames."""
    from pllava_demo.caption.captioner import prepare_video
    from pllava_demo.caption.records import CaptionJob

    path = write_video(tmp_path / "phone.mp4", width=1280, height=720, n_frames=3, fps=6, pattern="texture",
                       rotation=90)
    upright = [np.ascontiguousarray(np.rot90(f, k=1)) for f in decoded_full_size(path, [0, 1])]  # (1280, 720, 3)
    ours = prepare_video(CaptionJob(str(path)), 2).pixels
    assert torch.equal(ours, reference(np.stack(official_longshort(upright))))
