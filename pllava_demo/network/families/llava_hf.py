"""Plain LLaVA image checkpoints as llava-hf publishes them (LLaVA 1.5 / 1.6), used training-free
with PLLaVA's pooling and no LoRA: `language_model.model.*` + `language_model.lm_head.*` and CLIP
under `vision_tower.vision_model.*` (transformers 4), or transformers 5's `model.language_model.*`,
`model.vision_tower.*`, `model.multi_modal_projector.*` and a top-level `lm_head.*`. The catch-all
family: any LLaVA checkpoint no other family recognises is read with these names."""

from __future__ import annotations

from . import Family


def _to_disk(path: str) -> str:
    if path.startswith("vision_tower."):
        return "vision_tower.vision_model." + path[len("vision_tower."):]
    return path  # transformers 4's layout: language_model.model.*, language_model.lm_head.*, projector


LLAVA_HF = Family(
    name="llava-hf",
    description="plain llava-hf image checkpoint (no LoRA)",
    renames=(
        (r"^model\.language_model\.", "language_model.model."),  # transformers 5 llava layout
        (r"^lm_head\.", "language_model.lm_head."),
        (r"^model\.vision_tower\.", "vision_tower."),
        (r"^model\.multi_modal_projector\.", "multi_modal_projector."),
        (r"^model\.image_newline$", "image_newline"),
        (r"^vision_tower\.vision_model\.", "vision_tower."),  # transformers 4's CLIP layout
    ),
    to_disk=_to_disk,
    recognises=lambda config, keys: True,
    config_fields=lambda **_: {"architectures": ["LlavaForConditionalGeneration"]},
)
