"""clip_preprocess against transformers' CLIPImageProcessor (PIL backend) on real decoded frames.

Knows nothing about the model: only frames in, tensors out. The reference processor is built in
code (no download)."""

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor

from pllava_demo.preprocess import CLIP_MEAN, CLIP_STD, clip_preprocess, resize_output_size
from pllava_demo.video import read_video
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
