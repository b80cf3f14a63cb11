"""Checkpoint families: each on-disk layout's knowledge in one place, written and read by the same
Family, and the CLIP constants read from the checkpoint's preprocessor_config.json."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

from pllava_demo import CheckpointError, load_pllava
from pllava_demo.network.families import FAMILIES, LLAVA_HF, PLLAVA_RELEASE, family_of
from pllava_demo.frames.preprocess import CLIP_PIXELS, clip_preprocess
from videos import write_image


def _stored(folder):
    keys = []
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as s:
            keys += list(s.keys())
    return keys


@pytest.mark.parametrize("layout,family", [("official", PLLAVA_RELEASE), ("llava-hf", LLAVA_HF)])
def test_each_family_reads_back_what_it_writes(layout, family, tiny_official, tiny_llava_hf):
    folder = tiny_official if layout == "official" else tiny_llava_hf
    stored = _stored(folder)
    assert family_of(json.loads((folder / "config.json").read_text()), stored) is family
    loaded = load_pllava(folder, device="cpu", quantization="none")
    assert loaded.family is family
    ours = set(loaded.model.state_dict())
    # the writer's names and the reader's are inverse: every module path survives the round trip
    assert {family.canonical(family.to_disk(k)) for k in ours} == ours
    kept = loaded.model.vision_config.num_hidden_layers - 1  # feature layer -2
    read = {family.canonical(k) for k in stored}
    assert {k for k in read if not family.unused(k, kept)} == ours
    assert read - ours == {k for k in read if family.unused(k, kept)} != set()  # CLIP's last layer, post-LN
    if family is PLLAVA_RELEASE:  # the release's own names, as PLLAVA.md lists them
        assert "language_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight" in stored
        assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in stored
        assert (folder / "model.safetensors.index.json").exists() and (folder / "processor_config.json").exists()
    else:
        assert not any("lora" in k for k in stored) and (folder / "model.safetensors").exists()


def test_lora_and_quantisation_targets_come_from_the_family():
    assert PLLAVA_RELEASE.lora_targets == ("q_proj", "v_proj") and LLAVA_HF.lora_targets == ()
    for fam in FAMILIES:
        assert fam.is_quantized("language_model.model.layers.3.self_attn.q_proj.base")
        assert fam.is_quantized("language_model.model.layers.3.mlp.down_proj")
        assert not fam.is_quantized("vision_tower.encoder.layers.0.self_attn.q_proj")
        assert not fam.is_quantized("language_model.lm_head")
    with pytest.raises(ValueError, match="stores no LoRA"):
        LLAVA_HF.write_weights(__import__("pathlib").Path("/nonexistent"), [("x.lora_A.weight", torch.zeros(1))])


def test_transformers5_llava_names_are_llava_hf():
    keys = ["model.language_model.layers.0.self_attn.q_proj.weight", "lm_head.weight",
            "model.vision_tower.vision_model.embeddings.patch_embedding.weight"]
    assert family_of({}, keys) is LLAVA_HF
    assert [LLAVA_HF.canonical(k) for k in keys] == [
        "language_model.model.layers.0.self_attn.q_proj.weight", "language_model.lm_head.weight",
        "vision_tower.embeddings.patch_embedding.weight"]


def _with_preprocessor(src, dst, **changes):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "preprocessor_config.json").read_text())
    cfg.update(changes)
    (dst / "preprocessor_config.json").write_text(json.dumps(cfg))
    return dst


def test_clip_constants_come_from_preprocessor_config(tiny_official, tmp_path):
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.5, 0.125]
    ckpt = _with_preprocessor(tiny_official, tmp_path / "c", image_mean=mean, image_std=std)
    loaded = load_pllava(ckpt, device="cpu", quantization="none")
    assert loaded.pixels.mean == tuple(mean) and loaded.pixels.std == tuple(std)
    from pllava_demo.chat.engine import Engine

    image = write_image(tmp_path / "still.png", 320, 240)
    eng = Engine(loaded)
    vf = eng.prepare_video(image, 1)
    frames = vf.clip.frames
    want = eng.model.encode_frames(clip_preprocess(frames, 336, mean, std))
    clip_default = eng.model.encode_frames(clip_preprocess(frames, 336, CLIP_PIXELS.mean, CLIP_PIXELS.std))
    assert torch.equal(vf.features, want)
    assert not torch.allclose(vf.features, clip_default)  # the constants reach the features
    # the captioner decodes with the same spec
    from pllava_demo.caption.captioner import prepare_video
    from pllava_demo.caption.records import CaptionJob

    item = prepare_video(CaptionJob(str(image)), 1, loaded.pixels)
    assert np.array_equal(item.pixels.numpy(), clip_preprocess(frames, 336, mean, std).numpy())


def test_bad_or_missing_preprocessor_config(tiny_official, tmp_path):
    ckpt = _with_preprocessor(tiny_official, tmp_path / "crop", crop_size={"height": 224, "width": 224})
    with pytest.raises(CheckpointError, match="crops to 224 px but the vision tower takes 336 px"):
        load_pllava(ckpt, device="cpu", quantization="none")
    ckpt = _with_preprocessor(tiny_official, tmp_path / "std", image_std=[0.2, 0.0, 0.2])
    with pytest.raises(CheckpointError, match="positive image_std"):
        load_pllava(ckpt, device="cpu", quantization="none")
    ckpt = _with_preprocessor(tiny_official, tmp_path / "none")
    (ckpt / "preprocessor_config.json").unlink()
    loaded = load_pllava(ckpt, device="cpu", quantization="none")
    assert loaded.pixels == CLIP_PIXELS and any("preprocessor_config.json" in n for n in loaded.notes)
