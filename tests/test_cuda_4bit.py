"""4-bit nf4 loading on CUDA through our loader (skipped without CUDA): only the LLM's linear layers
are quantized, they really hold packed 4-bit weights on the GPU, the model stays close to its bf16
self, and the engine chats with it. Needs no av (the lent GPU machines lack it): the frames are
synthetic pixels, as the engine would pass them to CLIP."""

import math

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

PROMPT = "You are helpful. USER:<image>  USER:What is the person doing? ASSISTANT:"


def _logits(loaded, pixels):
    ids = loaded.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.inference_mode():
        return loaded.model(input_ids=ids, pixel_values=pixels, pooling_shape=(4, 6, 6)).logits[0, -8:].float()


def test_4bit_on_cuda_packs_only_the_llm_linears_and_stays_close_to_bf16(tiny_official):
    import bitsandbytes as bnb

    from pllava_demo import load_pllava

    q = load_pllava(tiny_official, device="cuda", quantization="4bit")
    assert q.quantization == "4bit" and q.device.type == "cuda"
    m = q.model
    quantized = [x for x in m.modules() if isinstance(x, bnb.nn.Linear4bit)]
    layers = len(m.language_model.model.layers)
    assert len(quantized) == 7 * layers  # q, k, v, o, gate, up, down in every layer
    for lin in quantized:
        w = lin.weight
        assert w.device.type == "cuda" and w.dtype == torch.uint8 and w.quant_state is not None
        assert w.numel() == math.ceil(lin.in_features * lin.out_features / 2)  # two 4-bit values per byte
    assert not any(isinstance(x, bnb.nn.Linear4bit) for x in m.vision_tower.modules())
    assert not any(isinstance(x, bnb.nn.Linear4bit) for x in m.multi_modal_projector.modules())
    assert not isinstance(m.language_model.lm_head, bnb.nn.Linear4bit)
    tensors = list(m.parameters()) + list(m.buffers())
    assert all(t.device.type == "cuda" for t in tensors)
    layer = m.language_model.model.layers[0].self_attn.q_proj
    assert layer.lora_A.weight.dtype == q.dtype  # LoRA stays in the compute dtype, not quantized

    pixels = torch.randn(4, 3, 336, 336, generator=torch.Generator().manual_seed(0))  # (T, 3, S, S)
    got = _logits(q, pixels)
    del q, m, quantized, tensors, layer
    ref = load_pllava(tiny_official, device="cuda", quantization="none")
    want = _logits(ref, pixels)
    assert torch.isfinite(got).all()
    # nf4 rounds each weight to one of 16 levels per block: close to bf16, not equal to it
    assert 0 < (got - want).norm() / want.norm() < 0.25
    assert torch.nn.functional.cosine_similarity(got, want, dim=-1).min() > 0.95


def test_4bit_engine_on_cuda_answers_and_reuses_its_cache(tiny_official):
    import numpy as np

    from pllava_demo.config import GenerationSettings
    from pllava_demo.frames.batch import Clip  # no PyAV: the GPU machine has none
    from pllava_demo.chat.engine import Engine
    from pllava_demo.chat.features import VideoFeatures

    eng = Engine.load(tiny_official, device="cuda", quantization="4bit")
    pixels = torch.randn(4, 3, 336, 336, generator=torch.Generator().manual_seed(1))  # (T, 3, S, S)
    feats = eng._encode(pixels)  # (T, H*W, D)
    assert feats.device.type == "cuda"
    session = eng.new_session()
    clip = Clip(frames=np.zeros((0, 1, 1, 3), np.uint8), timestamps=(), indices=(), duration=0.0, fps=0.0, width=336,
                height=336, n_total=4, source="synthetic", content_key="synthetic")
    session.video = VideoFeatures(clip=clip, features=feats, num_frames=4)
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    first = "".join(session.ask("Describe it.", pooling_shape=(4, 6, 6), settings=settings))
    assert first and eng.stats["decode_steps"] == 5
    prefilled = eng.stats["prefill_tokens"]
    "".join(session.ask("And then?", pooling_shape=(4, 6, 6), settings=settings))
    assert eng.stats["reused_tokens"] > 0
    assert eng.stats["prefill_tokens"] - prefilled < prefilled / 4  # the follow-up prefilled only new text
