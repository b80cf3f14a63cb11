"""The PLLaVA network, readable top to bottom: CLIP tower -> penultimate layer -> drop CLS ->
projector per frame -> adaptive pooling over (T, 24, 24) -> visual tokens written in place of the
single <image> token -> LLM (with LoRA on q_proj / v_proj).

This file knows tensors and modules. It does not know files (checkpoint.py builds and fills it),
text (prompt.py), decoding strategy (generate.py), batching (scheduler.py) or caching across turns
(engine.py). Every caller reaches the language model through `prefill` (a prompt's embeddings, or a
chunk of them, at explicit positions) and `decode` (one token per row at per-row positions, with a
mask over caches of different lengths): the one place that builds positions and masks.
The visual-token strategy (strategies.py; PLLaVA's pooling shape by default) is an argument of every
call, never baked into the weights.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForCausalLM, CLIPVisionConfig, CLIPVisionModel, PretrainedConfig
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..config import PoolingShape, VideoModelSpec
from ..frames import strategies


def kept_vision_layers(num_layers: int, feature_layer: int) -> int:
    """How many CLIP layers produce hidden_states[feature_layer]; the rest are never run.
    hidden_states has num_layers + 1 entries (the embeddings first)."""
    keep = feature_layer if feature_layer >= 0 else num_layers + 1 + feature_layer
    if not (0 <= keep <= num_layers):
        raise ValueError(f"vision_feature_layer {feature_layer} is outside a {num_layers}-layer tower")
    return keep


class Projector(nn.Module):
    """Two-layer MLP from CLIP width to LLM width, applied to each frame's patches before pooling."""

    def __init__(self, vision_width: int, text_width: int, act: str):
        super().__init__()
        self.linear_1 = nn.Linear(vision_width, text_width, bias=True)
        self.act = ACT2FN[act]
        self.linear_2 = nn.Linear(text_width, text_width, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class PllavaModel(nn.Module):
    def __init__(self, spec: VideoModelSpec, vision_config: CLIPVisionConfig, text_config: PretrainedConfig):
        super().__init__()
        self.spec = spec
        keep = kept_vision_layers(vision_config.num_hidden_layers, spec.vision_feature_layer)
        # The tower is built only as deep as the feature layer: later layers and the post-LN never affect PLLaVA.
        tower_config = CLIPVisionConfig(**{**vision_config.to_dict(), "num_hidden_layers": keep})
        tower_config._attn_implementation = "sdpa"
        self.vision_tower = CLIPVisionModel(tower_config)
        self.vision_tower.post_layernorm = nn.Identity()
        self.multi_modal_projector = Projector(vision_config.hidden_size, text_config.hidden_size, spec.projector_hidden_act)
        text_config._attn_implementation = "sdpa"
        self.language_model = AutoModelForCausalLM.from_config(text_config, attn_implementation="sdpa")
        self.vision_config = vision_config
        self.text_config = text_config

    # -- vision ----------------------------------------------------------------------------------
    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(T, 3, 336, 336) CLIP-normalised frames -> (T, 576, D) projected, un-pooled patch features."""
        dtype = self.multi_modal_projector.linear_1.weight.dtype
        out = self.vision_tower(pixel_values=pixel_values.to(self.device, dtype))
        feats = out.last_hidden_state  # (T, 1 + H*W, C): the tower ends at the feature layer
        if self.spec.vision_feature_select_strategy == "default":
            feats = feats[:, 1:]  # (T, H*W, C) drop CLS
        return self.multi_modal_projector(feats)  # (T, H*W, D)

    def pool(self, features: torch.Tensor, strategy=None, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(T, H*W, D) -> (N, D) visual tokens by a strategy (strategies.py; a (T', h', w') pooling shape
        is PLLaVA's, None the checkpoint's). extra: (K, H*W, D) features of the strategy's own images."""
        return strategies.parse(strategy, self.spec.pooling_shape).tokens(features, self.spec.frame_grid, extra)

    # -- text + video ----------------------------------------------------------------------------
    def expand_image_token(self, input_ids: torch.Tensor, n_video_tokens: int, attention_mask=None):
        """Replace each row's single <image> id by n copies: (B, L) -> (B, L - 1 + n)."""
        image_id = self.spec.image_token_index
        counts = (input_ids == image_id).sum(dim=1)
        if not bool((counts == 1).all()):
            raise ValueError(f"each prompt must hold exactly one <image> token, found {counts.tolist()}")
        rows, masks = [], []
        for b in range(input_ids.shape[0]):
            pos = int((input_ids[b] == image_id).nonzero()[0, 0])
            ids = input_ids[b]
            rows.append(torch.cat([ids[:pos], ids.new_full((n_video_tokens,), image_id), ids[pos + 1 :]]))
            if attention_mask is not None:
                m = attention_mask[b]
                masks.append(torch.cat([m[:pos], m.new_ones(n_video_tokens), m[pos + 1 :]]))
        ids = torch.stack(rows)  # (B, L - 1 + n)
        return ids, (torch.stack(masks) if attention_mask is not None else None)

    def embed(self, expanded_ids: torch.Tensor, video_tokens: torch.Tensor | None) -> torch.Tensor:
        """Embed ids in which every <image> position is one visual token. (B, S) -> (B, S, D).
        video_tokens: (B, N, D) or (N, D) for a single row; None when the ids hold no <image>."""
        image_id = self.spec.image_token_index
        is_image = expanded_ids == image_id  # (B, S)
        # The image id may lie past the embedding table (it does in several checkpoints): look up pad instead.
        text_ids = expanded_ids.masked_fill(is_image, self.spec.pad_token_id)
        embeds = self.language_model.get_input_embeddings()(text_ids)  # (B, S, D)
        n_slots = int(is_image.sum())
        n_given = 0 if video_tokens is None else video_tokens.reshape(-1, video_tokens.shape[-1]).shape[0]
        if n_slots != n_given:
            raise ValueError(
                f"the prompt has {n_slots} visual-token positions but {n_given} visual tokens were given"
            )
        if n_slots:
            flat = video_tokens.reshape(-1, embeds.shape[-1]).to(embeds.dtype)  # (B*N, D)
            embeds = embeds.masked_scatter(is_image.unsqueeze(-1), flat)
        return embeds

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        pooling_shape: PoolingShape | None = None,
        video_tokens: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        """input_ids (B, L) with one <image> each; pixel_values (B*T, 3, 336, 336) or pre-pooled
        video_tokens (B, N, D). Returns logits (B, L - 1 + N, V) (the last logits_to_keep only, if set)."""
        input_ids = input_ids.to(self.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        if pixel_values is not None:
            b = input_ids.shape[0]
            feats = self.encode_frames(pixel_values)  # (B*T, H*W, D)
            per_video = feats.reshape(b, feats.shape[0] // b, *feats.shape[1:])  # (B, T, H*W, D)
            video_tokens = torch.stack([self.pool(v, pooling_shape) for v in per_video])  # (B, N, D)
        if video_tokens is not None and video_tokens.dim() == 2:
            video_tokens = video_tokens.unsqueeze(0)  # (1, N, D)
        if video_tokens is not None and bool((input_ids == self.spec.image_token_index).any()):
            n_per_row = int((input_ids[0] == self.spec.image_token_index).sum())
            if n_per_row == 1 and video_tokens.shape[1] != 1:
                input_ids, attention_mask = self.expand_image_token(input_ids, video_tokens.shape[1], attention_mask)
        embeds = self.embed(input_ids, video_tokens)  # (B, S, D)
        position_ids = None
        if attention_mask is not None:
            # Left padding: positions count only real tokens (as the official merge does).
            position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
            if past_key_values is not None and past_key_values.get_seq_length() > 0:
                position_ids = position_ids[:, -embeds.shape[1] :]
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )
        return CausalLMOutputWithPast(logits=out.logits, past_key_values=out.past_key_values)

    def prefill(self, embeds: torch.Tensor, cache, start: int) -> torch.Tensor:
        """Run one row's embeddings (1, S, D) at positions start..start+S-1 on a cache holding the first
        `start` tokens (a prefix kept from an earlier turn, or the earlier chunks). Returns (1, V) logits."""
        positions = torch.arange(start, start + embeds.shape[1], device=embeds.device)[None]  # (1, S)
        hidden = self.language_model.model(inputs_embeds=embeds, position_ids=positions, past_key_values=cache,
                                           use_cache=True).last_hidden_state  # (1, S, D)
        # the head on the last row as a 2-D (1, D) tensor: a (1, 1, D) slice of (1, S, D) keeps the stride
        # S*D on its batch dim, and torch's CPU matmul then takes a batched path that copies the whole
        # head weight first (bfloat16: 126 ms against 2.2 ms per prefill here, 32k x 512 head)
        return self.language_model.lm_head(hidden[:, -1])  # (1, V)

    def decode(self, tokens: torch.Tensor, cache, positions: torch.Tensor) -> torch.Tensor:
        """One token per row: tokens (B,), positions (B,) = each row's cache length. The cache writes each
        row at its own position and hands attention its (B, 1, 1, L) mask (scheduler.SlotCache), so rows
        whose caches differ in length never see each other's pads. Returns (B, V) logits."""
        out = self.language_model(input_ids=tokens[:, None], position_ids=positions[:, None],
                                  attention_mask=cache.attention_mask(), past_key_values=cache, use_cache=True,
                                  logits_to_keep=1)
        return out.logits[:, -1]  # (B, V)

    @property
    def device(self) -> torch.device:
        return self.multi_modal_projector.linear_1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.multi_modal_projector.linear_1.weight.dtype
