"""An independent re-statement of the official PLLaVA forward pass, for numerical comparison.

Built the way the official code builds it: a full CLIP tower read at hidden_states[-2], the
projector, frame repetition to num_frames, nn.AdaptiveAvgPool3d over (D, T, H, W), the image
token merged by position arithmetic, and the LLM wrapped by peft's get_peft_model with
LoraConfig(r, lora_alpha, q_proj/v_proj, dropout 0). It shares no code with pllava_demo.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn


def _read_all(path: Path) -> dict:
    sd = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt", device="cpu") as h:
            for k in h.keys():
                sd[k] = h.get_tensor(k).float()
    return sd


class OfficialPllava(nn.Module):
    def __init__(self, path, lora_alpha: float, pooling_shape=None):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        self.cfg = cfg
        sd = _read_all(path)
        v = {k: val for k, val in cfg["vision_config"].items() if k != "model_type"}
        t = {k: val for k, val in cfg["text_config"].items() if k != "model_type"}
        self.clip = CLIPVisionModel(CLIPVisionConfig(**v, attn_implementation="eager")).float()
        self.clip.load_state_dict({k[len("vision_tower.vision_model."):]: w for k, w in sd.items()
                                   if k.startswith("vision_tower.vision_model.")}, strict=True)
        d_v, d_t = v["hidden_size"], t["hidden_size"]
        self.linear_1, self.act, self.linear_2 = nn.Linear(d_v, d_t), nn.GELU(), nn.Linear(d_t, d_t)
        for name in ("linear_1", "linear_2"):
            getattr(self, name).weight.data = sd[f"multi_modal_projector.{name}.weight"]
            getattr(self, name).bias.data = sd[f"multi_modal_projector.{name}.bias"]
        llm = LlamaForCausalLM(LlamaConfig(**t, attn_implementation="eager")).float()
        lora_keys = [k for k in sd if ".lora_A." in k]
        if lora_keys:
            r = sd[lora_keys[0]].shape[0]
            llm = get_peft_model(llm, LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=["q_proj", "v_proj"],
                                                 lora_dropout=0.0))
            prefix = "language_model."
        else:
            prefix = "language_model."
        llm_sd = {k[len(prefix):]: w for k, w in sd.items() if k.startswith(prefix)}
        missing, unexpected = llm.load_state_dict(llm_sd, strict=False)
        assert not unexpected and not [m for m in missing if "rotary" not in m], (missing, unexpected)
        self.llm = llm.eval()
        self.num_frames = cfg.get("num_frames", 16)
        self.pooling_shape = tuple(pooling_shape or cfg.get("pooling_shape", (16, 12, 12)))
        self.image_token = cfg["image_token_index"]
        self.pad = cfg.get("pad_token_id", 0)

    @torch.no_grad()
    def forward(self, input_ids, pixel_values):
        hs = self.clip(pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]  # (T, 576, C)
        if hs.shape[0] < self.num_frames:  # official: repeat each frame int(N/T)+1 times, cut to N
            hs = hs.repeat_interleave(int(self.num_frames / hs.shape[0]) + 1, dim=0)[: self.num_frames]
        x = self.linear_2(self.act(self.linear_1(hs)))  # (T, 576, D)
        t, hw, d = x.shape
        side = int(hw ** 0.5)
        video = x.reshape(1, t, side, side, d).permute(0, 4, 1, 2, 3)  # (1, D, T, H, W)
        video = nn.AdaptiveAvgPool3d(self.pooling_shape)(video)
        feats = video.permute(0, 2, 3, 4, 1).reshape(1, -1, d)  # (1, T'*h'*w', D)
        # merge as the official _merge_input_ids_with_image_features does for one unpadded row
        ids = input_ids
        emb = self.llm.get_input_embeddings()(torch.where(ids != self.image_token, ids, self.pad))
        n = feats.shape[1]
        is_img = ids == self.image_token
        new_pos = torch.cumsum(is_img * (n - 1) + 1, -1) - 1
        total = ids.shape[1] + n - 1
        final = torch.zeros(1, total, d)
        final[0, new_pos[0][~is_img[0]]] = emb[0][~is_img[0]]
        slots = torch.all(final == 0, dim=-1)
        final[slots] = feats.reshape(-1, d)
        position_ids = torch.arange(total).unsqueeze(0)
        return self.llm(inputs_embeds=final, attention_mask=torch.ones(1, total, dtype=torch.long),
                        position_ids=position_ids).logits
