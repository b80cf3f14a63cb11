"""Visual-token strategies: each against a statement of its paper's published recipe on known
features, then through the real engine (chat) and the captioner, and the engine's counters showing
that changing strategy never re-decodes and re-runs CLIP only for a strategy that makes images."""

import json

import numpy as np
import pytest
import torch

from pllava_demo import api_types
from pllava_demo.frames import strategies
from pllava_demo.caption.captioner import CaptionOptions, Captioner, run_captions
from pllava_demo.caption.records import CaptionJob
from pllava_demo.cli import main
from pllava_demo.config import GenerationSettings
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError
from pllava_demo.frames.preprocess import CLIP_MEAN, CLIP_STD
from pllava_demo.frames.strategies import ImageGrid, NFrame, PllavaPooling, SpatioTemporal, ThumbnailSampling
from videos import write_video

GRID = (24, 24)
FAST = GenerationSettings(max_new_tokens=4, min_new_tokens=4)


def known(t: int, d: int = 2) -> torch.Tensor:
    """(T, 576, D) features whose value says where they are: [t * 1000 + p, -p]."""
    tt, pp = torch.meshgrid(torch.arange(t, dtype=torch.float32), torch.arange(576, dtype=torch.float32), indexing="ij")
    return torch.stack([tt * 1000 + pp, -pp] + [pp * 0] * (d - 2), dim=-1)  # (T, 576, D)


# -- recipes on known features ---------------------------------------------------------------------
def test_pllava_is_the_mean_of_each_adaptive_window_in_t_h_w_order():
    """PLLaVA §3.2: average pooling of (T, 24, 24) to (T', h', w'); 4x24x24 -> 2x12x12 averages 2x2x2 blocks."""
    f = known(4)
    tokens = PllavaPooling((2, 12, 12)).tokens(f, GRID)
    ref = f.reshape(2, 2, 12, 2, 12, 2, 2).mean(dim=(1, 3, 5)).reshape(288, 2)  # blocks of (2 frames, 2 rows, 2 cols)
    assert torch.allclose(tokens, ref) and PllavaPooling((2, 12, 12)).n_tokens(4, GRID) == 288
    # fewer frames than T': each frame repeated (the official projector's rule), N never depends on T
    short = PllavaPooling((4, 24, 24)).tokens(known(2), GRID)
    assert torch.equal(short.reshape(4, 576, 2)[:2], known(2)[[0, 0]])


def test_n_frame_keeps_all_576_tokens_of_each_frame_and_says_how_many_frames_fit():
    f = known(3)
    s = NFrame()
    assert torch.equal(s.tokens(f, GRID), f.reshape(3 * 576, 2)) and s.n_tokens(3, GRID) == 1728
    s.check_fits(6, GRID, 4096)  # 3456 tokens fit a 4096 window
    with pytest.raises(InputError, match=r"8 frames are 4,608 tokens, more than the 4,096-token context window; "
                                         r"at most 6 frame\(s\) fit"):
        s.check_fits(8, GRID, 4096)


def test_video_chatgpt_is_frame_means_then_patch_means_over_time():
    """Video-ChatGPT get_spatio_temporal_features: temporal = mean over patches (T tokens), spatial = mean
    over frames (H*W tokens), concatenated temporal first."""
    f = known(4)
    tokens = SpatioTemporal().tokens(f, GRID)
    assert tokens.shape == (4 + 576, 2) and SpatioTemporal().n_tokens(4, GRID) == 580
    assert torch.allclose(tokens[:4, 0], torch.arange(4) * 1000 + 287.5)  # frame t: mean of t*1000 + p over p
    assert torch.allclose(tokens[4:, 0], 1500 + torch.arange(576.0))  # patch p: mean over t of t*1000 + p
    assert torch.allclose(tokens[4:, 1], -torch.arange(576.0))


def solid_frames(t: int, h: int = 48, w: int = 64) -> np.ndarray:
    """(T, h, w, 3) uint8: frame k is one grey level, 10 + 20k."""
    return np.stack([np.full((h, w, 3), 10 + 20 * k, np.uint8) for k in range(t)])


def test_ig_vlm_tiles_six_frames_three_rows_of_two_at_a_fixed_interval():
    """IG-VLM: frame_fixed_number 6, frame k * floor(N/6) (k/6 of the way in); round(sqrt(6)) = 2 per row,
    so 3 rows; white fills a short last row; the grid is one image -> one CLIP pass, 576 tokens."""
    s = ImageGrid()
    frames = solid_frames(12)
    assert s.chosen(12) == [0, 2, 4, 6, 8, 10] and s.layout(12) == (3, 2)
    assert s.chosen(16) == [0, 2, 5, 8, 10, 13] and s.chosen(4) == [0, 1, 2, 3]  # k/6 of the way in; all of 4
    pic = s.picture(frames)
    assert pic.shape == (3 * 48, 2 * 64, 3)
    for k, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]):
        assert (pic[r * 48:(r + 1) * 48, c * 64:(c + 1) * 64] == 10 + 20 * (2 * k)).all()
    five = ImageGrid(grid_frames=5).picture(solid_frames(5))  # round(sqrt(5)) = 2 per row: 3 rows, last cell white
    assert five.shape == (144, 128, 3) and (five[96:, 64:] == 255).all()
    pixels = s.frame_images(frames)  # resized to CLIP's one input size, no crop: every frame stays in
    assert pixels.shape == (1, 3, 336, 336)
    grey = pixels[0, 0] * CLIP_STD[0] + CLIP_MEAN[0]  # back to [0, 1]
    assert abs(float(grey[56, 84]) * 255 - 10) < 1.5 and abs(float(grey[280, 252]) * 255 - 210) < 1.5
    extra = known(1)
    assert torch.equal(s.tokens(known(12), GRID, extra), extra[0]) and s.n_tokens(12, GRID) == 576


def test_ts_llava_thumbnail_of_equidistant_frames_and_tokens_sampled_from_all_frames():
    """TS-LLaVA (default V2): 6 frames uniformly sampled (linspace, rounded) area-resized into a 3x2 grid of
    one 336x336 image; 2880 tokens sampled at linspace steps over all frames' tokens (first and last
    included), placed before the thumbnail's 576."""
    assert strategies.best_grid(6) == (3, 2) and strategies.best_grid(4) == (2, 2) and strategies.best_grid(8) == (4, 2)
    assert strategies.equidistant(50, 6) == [0, 10, 20, 29, 39, 49]
    s = ThumbnailSampling()
    pixels = torch.arange(16, dtype=torch.float32)[:, None, None, None].expand(16, 3, 336, 336)  # frame k = k
    thumb = s.thumbnail(pixels)
    picked = strategies.equidistant(16, 6)  # [0, 3, 6, 9, 12, 15]
    assert thumb.shape == (1, 3, 336, 336)
    for k, v in enumerate(picked):
        r, c = divmod(k, 2)
        assert (thumb[0, :, r * 112:(r + 1) * 112, c * 168:(c + 1) * 168] == v).all()
    f = known(16)
    extra = torch.full((1, 576, 2), -7.0)
    tokens = s.tokens(f, GRID, extra)
    assert tokens.shape == (2880 + 576, 2) and s.n_tokens(16, GRID) == 3456
    flat = f.reshape(-1, 2)
    assert torch.equal(tokens[0], flat[0]) and torch.equal(tokens[2879], flat[-1])  # first and last kept
    assert torch.equal(tokens[:2880], flat[torch.linspace(0, 16 * 576 - 1, 2880).round().long()])
    assert (tokens[2880:] == -7).all()
    few = ThumbnailSampling(sampled_tokens=5000)  # more than 4 frames hold: all of them
    assert few.n_tokens(4, GRID) == 4 * 576 + 576 and "all are used" in few.note(4, GRID)


def test_strategies_are_frozen_hashable_values_validated_once_naming_valid_values():
    assert ImageGrid(6) == ImageGrid() and hash(ImageGrid(6)) == hash(ImageGrid())
    assert len({PllavaPooling(), NFrame(), SpatioTemporal(), ImageGrid(), ImageGrid(4), ThumbnailSampling()}) == 6
    assert ImageGrid(4).key != ImageGrid(6).key != ThumbnailSampling().key
    with pytest.raises(AttributeError):
        ImageGrid().grid_frames = 3  # frozen
    with pytest.raises(InputError, match=r"Unknown strategy 'nope'; the strategies are pllava, n-frame, "
                                         r"video-chatgpt, ig-vlm, ts-llava\."):
        strategies.make("nope")
    with pytest.raises(InputError, match=r"grid_frames \(frames tiled into the grid\) must be a whole number 1-16"):
        ImageGrid(0)
    with pytest.raises(InputError, match=r"no setting\(s\) \['size'\]; its settings are \['grid_frames'\]"):
        strategies.make("ig-vlm", size=3)
    with pytest.raises(InputError, match="pooling shape"):
        PllavaPooling((4, 0, 12))
    assert strategies.parse((4, 6, 6)) == PllavaPooling((4, 6, 6)) and strategies.parse(None) == PllavaPooling()
    # the API's door: JSON whole numbers as 6.0 are fine; its own field names
    bounds = api_types.Bounds()
    assert api_types.strategy({"name": "ig-vlm", "grid_frames": 4.0}, bounds) == ImageGrid(4)
    assert api_types.strategy({"name": "pllava", "pooling": [4, 6, 6]}, bounds) == PllavaPooling((4, 6, 6))
    with pytest.raises(InputError, match=r"strategy ts-llava thumb_frames must be a whole number 1-16"):
        api_types.strategy({"name": "ts-llava", "thumb_frames": 2.5}, bounds)


# -- through the engine -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", n_frames=40, width=160, height=120)


ALL = [PllavaPooling((4, 6, 6)), NFrame(), SpatioTemporal(), ImageGrid(4), ThumbnailSampling(thumb_frames=4)]


def test_chat_through_each_strategy_and_clip_reruns_only_for_new_images(tiny_official, video):
    eng = Engine.load(tiny_official, device="cpu", quantization="none")
    tower = []
    eng.model.vision_tower.register_forward_hook(lambda *a: tower.append(1))
    s = eng.new_session()
    s.set_video(video, 4)
    seen, keys = [], set()
    for strategy in ALL + [ImageGrid(4), ImageGrid(2), PllavaPooling((4, 6, 6))]:
        before = eng.stats["prefill_tokens"]
        answer = "".join(s.ask("What happens?", strategy=strategy, lora_alpha=0, settings=FAST))
        assert answer.strip()
        n = strategy.n_tokens(4, GRID)
        assert eng.describe_view(s.video, strategy)["visual_tokens"] == n
        seen.append((strategy.name, eng.stats["videos_decoded"], eng.stats["strategy_vision_calls"], len(tower)))
        if strategy.key not in keys:  # a new strategy is a new KV signature: the video's tokens are prefilled
            assert eng.stats["prefill_tokens"] - before >= n
        keys.add(strategy.key)
    assert seen == [("pllava", 1, 0, 1), ("n-frame", 1, 0, 1), ("video-chatgpt", 1, 0, 1),
                    ("ig-vlm", 1, 1, 2), ("ts-llava", 1, 2, 3),
                    ("ig-vlm", 1, 2, 3),  # the same grid again: its features are remembered
                    ("ig-vlm", 1, 3, 4),  # another grid size is another image
                    ("pllava", 1, 3, 4)]
    assert len(s.turns) == 8  # the chat is kept across strategies
    panels = eng.token_norms(s.video, ThumbnailSampling(thumb_frames=4))
    assert [label for label, _ in panels] == ["sampled", "thumbnail"] and panels[1][1].shape == (24, 24)


def test_n_frame_that_does_not_fit_is_refused_before_any_work(tiny_official, video):
    eng = Engine.load(tiny_official, device="cpu", quantization="none")
    s = eng.new_session()
    s.set_video(video, 8)
    with pytest.raises(InputError, match=r"at most 6 frame\(s\) fit"):
        s.ask("q", strategy=NFrame(), settings=FAST)
    assert eng.stats["prefills"] == 0


# -- through the captioner ------------------------------------------------------------------------
def test_captions_through_each_strategy_record_it(tiny_official, tmp_path):
    from pllava_demo.network.checkpoint import load_pllava

    loaded = load_pllava(tiny_official, device="cpu", quantization="none")
    paths = [write_video(tmp_path / f"c{i}.mp4", n_frames=20 + 9 * i, pattern="colour") for i in range(2)]
    for strategy in ALL:
        captioner = Captioner(loaded, CaptionOptions(num_frames=4, strategy=strategy, settings=FAST))
        records = []
        run_captions(captioner, [CaptionJob(str(p)) for p in paths], records.append, batch_size=2, workers=0)
        assert [r.get("error") for r in records] == [None, None]
        assert all(r["caption"].strip() and r["settings"]["strategy"] == strategy.as_dict() for r in records)


def test_caption_and_ask_commands_take_strategy_flags(tiny_official, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    write_video(tmp_path / "in" / "a.mp4", n_frames=24)
    out = tmp_path / "caps.jsonl"
    code = main(["caption", str(tmp_path / "in"), "--out", str(out), "--model", str(tiny_official), "--device", "cpu",
                 "--quantization", "none", "--frames", "6", "--strategy", "ig-vlm", "--grid-frames", "4",
                 "--max-new-tokens", "4", "--min-new-tokens", "4", "--workers", "0"])
    assert code == 0
    record = json.loads(out.read_text().splitlines()[0])
    assert record["settings"]["strategy"] == {"name": "ig-vlm", "grid_frames": 4}
    assert record["settings"]["pooling_shape"] is None and record["caption"]
    video = tmp_path / "in" / "a.mp4"
    code = main(["ask", str(video), "What?", "--model", str(tiny_official), "--device", "cpu", "--quantization", "none",
                 "--frames", "4", "--strategy", "video-chatgpt", "--max-new-tokens", "3", "--lora-alpha", "0"])
    err = capsys.readouterr().err
    assert code == 0 and "4 frame means + 576 patch means = 580 visual tokens" in err
    code = main(["ask", str(video), "What?", "--model", str(tiny_official), "--frames", "4", "--grid-frames", "4"])
    assert code == 2 and "--grid-frames is a setting of the ig-vlm strategy, not of pllava" in capsys.readouterr().err


def test_a_strategy_chosen_with_the_default_frame_count_takes_the_most_that_fit_and_says_so(tiny_official, tmp_path,
                                                                                          capsys):
    """--strategy n-frame with no --frames was refused ("at most 6 frame(s) fit") although the person
    chose no frame count: the default now gives way to the strategy, and the command says so. A count
    the person chose is still refused when it does not fit."""
    assert NFrame().fitted_frames(16, GRID, 4096) == (6, "No pooling (n-frame): 6 frame(s), the most whose tokens "
                                                          "fit the 4,096-token context window (the default is 16).")
    assert PllavaPooling().fitted_frames(16, GRID, 4096) == (16, None)
    video = write_video(tmp_path / "a.mp4", n_frames=24)
    common = ["--model", str(tiny_official), "--device", "cpu", "--quantization", "none", "--max-new-tokens", "3"]
    assert main(["ask", str(video), "What?", "--strategy", "n-frame", *common]) == 0
    err = capsys.readouterr().err
    assert "6 frame(s), the most whose tokens fit" in err and "no pooling, 6 frames × 576 tokens = 3456 visual" in err
    assert main(["ask", str(video), "What?", "--strategy", "n-frame", "--frames", "8", *common]) == 2
    assert "at most 6 frame(s) fit" in capsys.readouterr().err
    # the captioner's prompt (the recaption system prompt) is longer: it fits fewer, and one more would not fit
    out = tmp_path / "caps.jsonl"
    assert main(["caption", str(video), "--out", str(out), "--strategy", "n-frame", "--workers", "0", *common]) == 0
    record = json.loads(out.read_text().splitlines()[0])
    fitted = record["settings"]["frames"]
    assert 1 <= fitted < 6 and record.get("error") is None, record
    assert f"{fitted} frame(s), the most whose tokens fit" in capsys.readouterr().err
    more = tmp_path / "more.jsonl"
    assert main(["caption", str(video), "--out", str(more), "--strategy", "n-frame", "--workers", "0",
                 "--frames", str(fitted + 1), *common]) == 0
    assert "no room for an answer" in json.loads(more.read_text().splitlines()[0])["error"]
