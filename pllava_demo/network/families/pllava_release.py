"""The official PLLaVA release (ermu2001/pllava-7b, -13b, -34b): one full state dict saved from the
PEFT-wrapped model in safetensors shards plus an index. The LLM sits under PEFT's
`language_model.base_model.model.`, LoRA (r=128, on q_proj and v_proj) as `<proj>.base_layer.weight`,
`<proj>.lora_A.default.weight` (r x in) and `<proj>.lora_B.default.weight` (out x r); CLIP in the old
`vision_tower.vision_model.` layout. config.json carries the video fields (num_frames, pooling_shape,
...) and leftovers of training the loader must tolerate (see ../shared/PLLAVA.md section 2)."""

from __future__ import annotations

import json
import re

from . import Family

LORA_TARGETS = ("q_proj", "v_proj")
_PEFT = "language_model.base_model.model."


def _to_disk(path: str) -> str:
    if path.startswith("language_model."):
        path = _PEFT + path[len("language_model."):]
        path = re.sub(r"\.base\.weight$", ".base_layer.weight", path)
        return re.sub(r"\.lora_([AB])\.weight$", r".lora_\1.default.weight", path)
    if path.startswith("vision_tower."):
        return "vision_tower.vision_model." + path[len("vision_tower."):]
    return path


def _recognises(config: dict, keys: list[str]) -> bool:
    return any(k.startswith(_PEFT) for k in keys)


def _config_fields(*, pooling_shape=(16, 12, 12), num_frames: int = 16, **_) -> dict:
    return {
        "architectures": ["PlavaForConditionalGeneration"],  # sic, as released
        "num_frames": num_frames, "pooling_method": "avg", "pooling_shape": list(pooling_shape),
        "frame_shape": [24, 24], "use_pooling": True,
        # leftovers the real release carries and a loader must tolerate
        "use_image_newline_parameter": True, "slide_pooling_shape": [1, 24, 24],
        "image_grid_pinpoints": [[336, 672], [672, 336]], "gradient_checkpointing": False,
    }


PLLAVA_RELEASE = Family(
    name="pllava-release",
    description="official PLLaVA release (PEFT-wrapped LLM with LoRA, safetensors shards)",
    renames=(
        (r"^language_model\.base_model\.model\.", "language_model."),
        (r"^vision_tower\.vision_model\.", "vision_tower."),
        (r"\.base_layer\.", ".base."),
        (r"\.lora_([AB])\.default\.", r".lora_\1."),
    ),
    to_disk=_to_disk,
    recognises=_recognises,
    lora_targets=LORA_TARGETS,
    config_fields=_config_fields,
    # never read on the official resize path (its 762 is unused; PLLAVA.md section 3), but released
    extra_files=(("processor_config.json", json.dumps(
        {"center_pad": False, "longest_edge": 762, "processor_class": "PlavaProcessor", "shortest_edge": 336})),),
    sharded=True,
)
