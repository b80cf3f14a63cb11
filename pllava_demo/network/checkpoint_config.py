"""What a checkpoint folder says about itself, read without loading a weight: config.json (the model
spec, the transformers configs of the vision tower and the language model, the context length),
preprocessor_config.json (the pixel spec), which safetensors files hold the weights and their key
names, and the LoRA rank stored in them.

It knows the on-disk formats (JSON, safetensors headers); it does not know where the folder came from
(hub.py), devices or dtypes (device_policy.py), tokenizers (tokenizer.py) nor how tensors are placed
in the model (weights.py). Pickle weights are named and refused, never opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import VideoModelSpec
from ..errors import CheckpointError
from ..frames.preprocess import CLIP_PIXELS, PixelSpec
from .hub import resolve_source

OFFICIAL_LORA_ALPHA = 4.0  # every official inference script uses 4 (trained with 32, r=128)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (path / s).exists()]
        if missing:
            raise CheckpointError(f"{path} is missing weight shards: {', '.join(missing)} (an interrupted download?).")
        return [path / s for s in shards]
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(
            f"{path} holds only pickle weights ({', '.join(pickles[:3])}); for safety only .safetensors are loaded."
        )
    raise CheckpointError(f"{path} has no .safetensors weights.")


def read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} has no config.json; is it a model folder?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}/config.json is not valid JSON: {e}") from None


def read_pixel_spec(path: Path, image_size: int, notes: list[str]) -> PixelSpec:
    """The CLIP crop and normalisation from preprocessor_config.json (CLIP's own, with a note, when the
    folder has none). A crop that is not the tower's image size would change the patch grid: refused."""
    file = path / "preprocessor_config.json"
    if not file.exists():
        notes.append(f"{path} has no preprocessor_config.json: using CLIP's {image_size} px crop and normalisation.")
        return PixelSpec(size=image_size)
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
        crop = cfg.get("crop_size", image_size)
        size = int(crop["height"] if isinstance(crop, dict) else crop)
        mean = tuple(float(x) for x in cfg.get("image_mean", CLIP_PIXELS.mean))
        std = tuple(float(x) for x in cfg.get("image_std", CLIP_PIXELS.std))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{file} could not be read: {type(e).__name__}: {e}") from None
    if size != image_size:
        raise CheckpointError(f"{file} crops to {size} px but the vision tower takes {image_size} px images.")
    if len(mean) != 3 or len(std) != 3 or not all(x > 0 for x in std):
        raise CheckpointError(f"{file} needs three image_mean and three positive image_std values.")
    return PixelSpec(size=size, mean=mean, std=std)


def pixel_spec_for(source: str | os.PathLike) -> PixelSpec:
    """A checkpoint's pixel spec without loading its weights (for decoding workers)."""
    path = resolve_source(source)
    size = int((read_config(path).get("vision_config") or {}).get("image_size", 336))
    return read_pixel_spec(path, size, [])


def context_length(text_config) -> int:
    return int(getattr(text_config, "max_position_embeddings", 4096) or 4096)


def frames_room_for(source: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """A checkpoint's patch grid per frame and context length without loading its weights (what a
    strategy needs to say how many frames fit, for decoding workers that start before the model)."""
    vision_config, text_config = hf_configs(read_config(resolve_source(source)))
    side = int(vision_config.image_size) // int(vision_config.patch_size)
    return (side, side), context_length(text_config)


def stored_keys(path: Path, files: list[Path]) -> list[str]:
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.exists():
        return list(json.loads(index.read_text())["weight_map"])
    keys = []
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            keys += list(f.keys())
    return keys


def stored_lora_rank(files: list[Path]) -> int:
    """The rank of the LoRA weights stored in the files (from the first lora_A's shape), 0 without any."""
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            lora_key = next((k for k in f.keys() if ".lora_A." in k), None)
            if lora_key:
                return int(f.get_slice(lora_key).get_shape()[0])
    return 0


def spec_from_config(cfg: dict, lora_rank: int, lora_alpha: float | None = None) -> VideoModelSpec:
    vcfg = cfg.get("vision_config") or {}
    image_size, patch = int(vcfg.get("image_size", 336)), int(vcfg.get("patch_size", 14))
    layer = cfg.get("vision_feature_layer", -2)
    if isinstance(layer, (list, tuple)):
        raise CheckpointError("Checkpoints that concatenate several vision layers are not supported by PLLaVA.")
    image_token = cfg.get("image_token_index", cfg.get("image_token_id"))
    if image_token is None:
        raise CheckpointError("config.json names no image_token_index; is this a LLaVA checkpoint?")
    text_cfg = cfg.get("text_config") or {}
    pad = cfg.get("pad_token_id", text_cfg.get("pad_token_id"))
    return VideoModelSpec(
        image_token_index=int(image_token),
        pad_token_id=int(pad) if pad is not None else 0,
        pooling_shape=tuple(cfg.get("pooling_shape") or (16, 12, 12)),
        num_frames=int(cfg.get("num_frames") or 16),
        frame_grid=(image_size // patch, image_size // patch),
        vision_feature_layer=int(layer),
        vision_feature_select_strategy=cfg.get("vision_feature_select_strategy", "default"),
        projector_hidden_act=cfg.get("projector_hidden_act", "gelu"),
        has_lora=lora_rank > 0,
        lora_rank=lora_rank,
        default_lora_alpha=(OFFICIAL_LORA_ALPHA if lora_alpha is None else lora_alpha) if lora_rank > 0 else 0.0,
    )


def hf_configs(cfg: dict):
    from transformers import AutoConfig, CLIPVisionConfig

    vcfg = dict(cfg.get("vision_config") or {})
    vcfg.pop("model_type", None)
    tcfg = dict(cfg.get("text_config") or {})
    text_type = tcfg.pop("model_type", "llama")
    for leftover in ("architectures", "_name_or_path", "torch_dtype", "dtype"):
        tcfg.pop(leftover, None)
        vcfg.pop(leftover, None)
    return CLIPVisionConfig(**vcfg), AutoConfig.for_model(text_type, **tcfg)
