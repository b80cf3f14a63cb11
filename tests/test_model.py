"""The model's numbers: equal to the official implementation, pooling shapes, live LoRA alpha, 4-bit."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from official_reference import OfficialPllava
from pllava_demo import load_pllava
from pllava_demo.errors import InputError
from pllava_demo.network.lora import LoRALinear
from videos import write_video

PROMPT = "You are helpful. USER:<image>  USER:What is the person doing? ASSISTANT:"


def _inputs(loaded, frames, seed=0):
    ids = loaded.tokenizer(PROMPT, return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(frames, 3, 336, 336, generator=g)
    return ids, pixels


@pytest.fixture(scope="module")
def fp32_model(tiny_official):
    return load_pllava(tiny_official, device="cpu", quantization="none", dtype=torch.float32)


@pytest.mark.parametrize("alpha", [0.0, 4.0, 32.0])
def test_logits_equal_official_implementation(tiny_official, fp32_model, alpha):
    fp32_model.set_lora_alpha(alpha)
    ids, pixels = _inputs(fp32_model, 16)
    ours = fp32_model.model(input_ids=ids, pixel_values=pixels, attention_mask=torch.ones_like(ids)).logits
    ref = OfficialPllava(tiny_official, lora_alpha=alpha)(ids, pixels)
    n = 16 * 12 * 12
    assert ours.shape == ref.shape == (1, ids.shape[1] - 1 + n, ref.shape[-1])
    assert (ours - ref).abs().max().item() < 1e-4


def test_fewer_frames_than_pooled_length_repeats_like_official(tiny_official, fp32_model):
    fp32_model.set_lora_alpha(4.0)
    ids, pixels = _inputs(fp32_model, 5, seed=1)  # official would repeat 5 -> 16 frames, then pool
    ours = fp32_model.model(input_ids=ids, pixel_values=pixels).logits
    ref = OfficialPllava(tiny_official, lora_alpha=4.0)(ids, pixels)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("frames,shape", [(16, (16, 12, 12)), (16, (8, 6, 6)), (4, (4, 24, 24)), (1, (1, 1, 1)),
                                          (32, (16, 12, 12)), (7, (3, 5, 7)), (2, (16, 6, 6))])
def test_pooling_shape_at_call_time_gives_token_count(tiny_official, fp32_model, frames, shape):
    ids, pixels = _inputs(fp32_model, frames)
    out = fp32_model.model(input_ids=ids, pixel_values=pixels, pooling_shape=shape).logits
    tp, hp, wp = shape
    assert out.shape[1] == ids.shape[1] - 1 + tp * hp * wp
    if frames >= tp and frames <= 16 and shape != (16, 12, 12):
        ref = OfficialPllava(tiny_official, lora_alpha=4.0, pooling_shape=shape)
        ref.num_frames = frames  # official needs num_frames == T to not crash; pooling then runs on T frames
        assert (out - ref(ids, pixels)).abs().max().item() < 1e-4


def test_bad_pooling_shape_is_a_clear_error(fp32_model):
    ids, pixels = _inputs(fp32_model, 2)
    with pytest.raises(InputError, match="height 1-24"):
        fp32_model.model(input_ids=ids, pixel_values=pixels, pooling_shape=(2, 30, 12))


def test_token_count_mismatch_is_a_clear_error(fp32_model):
    ids, pixels = _inputs(fp32_model, 2)
    tokens = fp32_model.model.pool(fp32_model.model.encode_frames(pixels), (2, 2, 2))
    expanded, _ = fp32_model.model.expand_image_token(ids, 8)
    with pytest.raises(ValueError, match="8 visual-token positions but 7"):
        fp32_model.model.embed(expanded, tokens[:7])


def test_alpha_changes_logits_and_zero_equals_base_weights(tiny_official, fp32_model, tmp_path):
    ids, pixels = _inputs(fp32_model, 4)
    fp32_model.set_lora_alpha(0.0)
    at0 = fp32_model.model(input_ids=ids, pixel_values=pixels).logits
    fp32_model.set_lora_alpha(20.0)
    at20 = fp32_model.model(input_ids=ids, pixel_values=pixels).logits
    assert (at0 - at20).abs().max().item() > 1e-3
    # The same checkpoint with its LoRA removed: alpha 0 must give exactly these numbers.
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    for f in tiny_official.iterdir():
        if f.suffix == ".safetensors":
            sd = {k.replace(".base_layer.", "."): v for k, v in load_file(str(f)).items() if ".lora_" not in k}
            save_file(sd, str(base_dir / f.name))
        elif f.name != "model.safetensors.index.json":
            (base_dir / f.name).write_bytes(f.read_bytes())
    base = load_pllava(base_dir, device="cpu", quantization="none", dtype=torch.float32)
    assert not base.has_lora
    assert torch.equal(base.model(input_ids=ids, pixel_values=pixels).logits, at0)
    fp32_model.set_lora_alpha(4.0)


def test_lora_is_on_language_model_q_v_only(fp32_model):
    names = [n for n, m in fp32_model.model.named_modules() if isinstance(m, LoRALinear)]
    assert names and all(n.startswith("language_model.model.layers.") for n in names)
    assert {n.rsplit(".", 1)[-1] for n in names} == {"q_proj", "v_proj"}
    assert fp32_model.spec.lora_rank == 8 and fp32_model.lora_alpha == 4.0


def test_llava_hf_layout_matches_transformers_llava(tiny_llava_hf):
    """A plain LLaVA image checkpoint, one frame pooled 1x24x24, equals transformers' own LLaVA."""
    from transformers import LlavaForConditionalGeneration

    ours = load_pllava(tiny_llava_hf, device="cpu", quantization="none", dtype=torch.float32)
    assert not ours.has_lora
    ref = LlavaForConditionalGeneration.from_pretrained(str(tiny_llava_hf), dtype=torch.float32).eval()
    ids, pixels = _inputs(ours, 1)
    expanded, _ = ours.model.expand_image_token(ids, 576)
    with torch.no_grad():
        want = ref(input_ids=expanded, pixel_values=pixels).logits
    got = ours.model(input_ids=ids, pixel_values=pixels, pooling_shape=(1, 24, 24)).logits
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-4


def test_4bit_nf4_loads_and_generates_on_cpu(tiny_official, tmp_path):
    import bitsandbytes as bnb

    from pllava_demo.config import GenerationSettings
    from pllava_demo.chat.engine import Engine

    loaded = load_pllava(tiny_official, device="cpu", quantization="4bit")
    m = loaded.model
    assert loaded.quantization == "4bit"
    layer = m.language_model.model.layers[0]
    assert isinstance(layer.mlp.down_proj, bnb.nn.Linear4bit)
    assert isinstance(layer.self_attn.q_proj.base, bnb.nn.Linear4bit)
    assert not any(isinstance(x, bnb.nn.Linear4bit) for x in m.vision_tower.modules())
    assert not isinstance(m.language_model.lm_head, bnb.nn.Linear4bit)
    assert not any(isinstance(x, bnb.nn.Linear4bit) for x in m.multi_modal_projector.modules())
    ids, pixels = _inputs(loaded, 4)
    logits = m(input_ids=ids, pixel_values=pixels, pooling_shape=(4, 6, 6)).logits
    assert torch.isfinite(logits).all()
    engine = Engine(loaded)
    session = engine.new_session()
    session.set_video(write_video(tmp_path / "v.mp4", n_frames=12), 4)
    text = "".join(session.ask("Describe it.", pooling_shape=(4, 6, 6),
                               settings=GenerationSettings(max_new_tokens=6, min_new_tokens=6)))
    assert text and engine.stats["decode_steps"] == 5


def test_config_leftovers_are_tolerated_and_checkpoint_pooling_used(tiny_official):
    cfg = json.loads((tiny_official / "config.json").read_text())
    assert "image_grid_pinpoints" in cfg and cfg["architectures"] == ["PlavaForConditionalGeneration"]
    loaded = load_pllava(tiny_official, device="cpu", quantization="none")
    assert loaded.spec.pooling_shape == (16, 12, 12) and loaded.spec.num_frames == 16


def test_prefill_gives_the_head_one_2d_row_with_the_full_forward_logits(fp32_model):
    """model.prefill's logits are the full forward's last row, and the head gets that row as a 2-D
    (1, D) tensor: a (1, 1, D) slice of the (1, S, D) hidden states made torch's CPU matmul copy the
    whole head weight first (126 ms against 2.2 ms per prefill in bfloat16, bench/README.md section 6)."""
    from pllava_demo.chat.kvcache import new_kv_cache

    m = fp32_model.model
    embeds = torch.randn(1, 40, m.language_model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    seen = []
    hook = m.language_model.lm_head.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    try:
        with torch.inference_mode():
            got = m.prefill(embeds, new_kv_cache(), 0)  # (1, V)
    finally:
        hook.remove()
    assert seen == [torch.Size([1, embeds.shape[-1]])]
    with torch.inference_mode():
        full = m.language_model(inputs_embeds=embeds).logits[:, -1]  # (1, V)
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)
