"""Finding, checking and loading checkpoints into a PllavaModel: the official PLLaVA release
(a PEFT-wrapped full state dict in safetensors shards) and plain llava-hf image checkpoints
(LLaVA 1.5 / NeXT, used training-free with pooling). Quantization and LoRA are decided here.

Only safetensors are read (no pickle, no trust_remote_code). Every weight the model needs must be
in the files and every weight in the files must be used or known to be unused: anything else
raises CheckpointError naming the keys, because a silent random init gives fluent garbage.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..config import VideoModelSpec, check_lora_alpha
from ..errors import CheckpointError
from .families import LLAVA_HF, Family, family_of
from .lora import LoRALinear, attach_lora, lora_alpha_of, set_lora_alpha
from .model import PllavaModel, kept_vision_layers
from ..frames.preprocess import CLIP_PIXELS, PixelSpec

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
Quantization = Literal["auto", "none", "4bit"]
OFFICIAL_LORA_ALPHA = 4.0  # every official inference script uses 4 (trained with 32, r=128)
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class LoadedPllava:
    """A ready model with what the engine needs to talk to it."""

    model: PllavaModel
    tokenizer: object
    spec: VideoModelSpec
    path: Path
    name: str
    device: torch.device
    dtype: torch.dtype
    quantization: str
    context_length: int
    is_tiny: bool = False
    notes: list[str] = field(default_factory=list)
    family: Family = LLAVA_HF
    pixels: PixelSpec = CLIP_PIXELS  # from preprocessor_config.json

    @property
    def has_lora(self) -> bool:
        return self.spec.has_lora

    @property
    def lora_alpha(self) -> float | None:
        return lora_alpha_of(self.model)

    def set_lora_alpha(self, alpha: float) -> None:
        """Change the LoRA strength in place (no reload). Alpha 0 is the image LLM's own weights."""
        if not self.has_lora:
            raise CheckpointError(f"{self.name} has no LoRA weights, so its alpha cannot be changed.")
        set_lora_alpha(self.model, alpha)

    def describe(self) -> str:
        lora = f", LoRA r={self.spec.lora_rank} alpha={self.lora_alpha:g}" if self.has_lora else ", no LoRA"
        q = "4-bit nf4" if self.quantization == "4bit" else str(self.dtype).replace("torch.", "")
        return f"{self.name} on {self.device.type} ({q}{lora})" + (" [tiny random test model]" if self.is_tiny else "")


# -- finding the files --------------------------------------------------------------------------
def resolve_source(source: str | os.PathLike) -> Path:
    """A local folder, or a Hub repo id downloaded (with a progress bar) into the standard cache."""
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"'{source}' is a file; give the folder that holds config.json and the weights.")
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", str(source)):
        raise CheckpointError(f"No folder '{source}' and it is not a Hub repo id like 'ermu2001/pllava-7b'.")
    return _download(str(source))


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=WEIGHT_PATTERNS))
    except LocalEntryNotFoundError as e:
        why = "downloads are off (HF_HUB_OFFLINE=1)" if offline else "the Hub could not be reached"
        raise CheckpointError(f"Model '{repo_id}' is not in the local cache and {why}.") from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(f"Model '{repo_id}' was not found on the Hugging Face Hub (or it is private).") from e
    except Exception as e:  # network errors come in many types; the user needs one line
        raise CheckpointError(f"Could not download '{repo_id}': {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e


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


def _context_length(text_config) -> int:
    return int(getattr(text_config, "max_position_embeddings", 4096) or 4096)


def frames_room_for(source: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """A checkpoint's patch grid per frame and context length without loading its weights (what a
    strategy needs to say how many frames fit, for decoding workers that start before the model)."""
    vision_config, text_config = _hf_configs(read_config(resolve_source(source)))
    side = int(vision_config.image_size) // int(vision_config.patch_size)
    return (side, side), _context_length(text_config)


def _stored_keys(path: Path, files: list[Path]) -> list[str]:
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    if index.exists():
        return list(json.loads(index.read_text())["weight_map"])
    keys = []
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            keys += list(f.keys())
    return keys


# -- key names ----------------------------------------------------------------------------------
def canonical_key(key: str, family: Family | None = None) -> str:
    """A stored key as this project's module path, read with its family's names (by default the family
    the key's own prefix points to: PEFT-wrapped keys are the release's, anything else llava-hf's)."""
    return (family or family_of({}, [key])).canonical(key)


# -- the spec -----------------------------------------------------------------------------------
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


def _hf_configs(cfg: dict):
    from transformers import AutoConfig, CLIPVisionConfig

    vcfg = dict(cfg.get("vision_config") or {})
    vcfg.pop("model_type", None)
    tcfg = dict(cfg.get("text_config") or {})
    text_type = tcfg.pop("model_type", "llama")
    for leftover in ("architectures", "_name_or_path", "torch_dtype", "dtype"):
        tcfg.pop(leftover, None)
        vcfg.pop(leftover, None)
    return CLIPVisionConfig(**vcfg), AutoConfig.for_model(text_type, **tcfg)


# -- placing tensors ----------------------------------------------------------------------------
def _module_and_name(root: nn.Module, key: str):
    path, _, name = key.rpartition(".")
    return root.get_submodule(path), name, path


def _quantize_linear(linear: nn.Module, weight: torch.Tensor, device, dtype) -> nn.Module:
    import bitsandbytes as bnb

    q = bnb.nn.Linear4bit(
        linear.in_features, linear.out_features, bias=linear.bias is not None,
        compute_dtype=dtype, quant_type="nf4", device="meta",
    )
    q.weight = bnb.nn.Params4bit(weight.to(dtype), requires_grad=False, quant_type="nf4")
    if linear.bias is not None and not linear.bias.is_meta:
        q.bias = linear.bias
    return q.to(device)  # .to() quantizes (CUDA, and CPU with bitsandbytes >= 0.48)


def _load_weights(model: PllavaModel, family: Family, files: list[Path], device, dtype, quantize: bool,
                  kept_layers: int):
    from safetensors import safe_open

    expected = set(model.state_dict().keys())
    loaded, unexpected, mismatched = set(), [], []
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for raw_key in f.keys():
                key = family.canonical(raw_key)
                if key not in expected:
                    if not family.unused(key, kept_layers):
                        unexpected.append(raw_key)
                    continue
                tensor = f.get_tensor(raw_key)
                module, name, path = _module_and_name(model, key)
                current = getattr(module, name)
                if tuple(current.shape) != tuple(tensor.shape) and not getattr(current, "bnb_quantized", False):
                    mismatched.append(f"{raw_key} {tuple(tensor.shape)} != {tuple(current.shape)}")
                    continue
                if quantize and name == "weight" and family.is_quantized(path):
                    parent, _, child = path.rpartition(".")
                    setattr(model.get_submodule(parent), child, _quantize_linear(module, tensor, device, dtype))
                else:
                    value = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else tensor.dtype)
                    if name in module._parameters:
                        module._parameters[name] = nn.Parameter(value, requires_grad=False)
                    else:
                        module._buffers[name] = value
                loaded.add(key)
    missing = sorted(expected - loaded)
    lm_head = "language_model.lm_head.weight"
    if missing == [lm_head] and getattr(model.text_config, "tie_word_embeddings", False):
        model.language_model.lm_head.weight = model.language_model.get_input_embeddings().weight
        missing = []
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing weights (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights (e.g. {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} weights of the wrong shape (e.g. {'; '.join(mismatched[:3])})")
    if problems:
        raise CheckpointError("The checkpoint does not match the model: " + "; ".join(problems) + ".")
    return len(loaded)


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("device='cuda' was asked for but no CUDA GPU is visible; use device='cpu'.")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise CheckpointError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    return torch.device(device)


def auto_quantization(device_type: str) -> str:
    """What quantization="auto" means: 4-bit nf4 on a GPU of your own, none on CPU, and none on ZeroGPU,
    whose CUDA emulation moves the weights with `.to()` between calls, which bitsandbytes' quantized
    layers refuse (bf16 there)."""
    # the variable a ZeroGPU Space sets (read here, not through the `spaces` package: this module loads
    # weights and knows no runner; PLLAVA_NO_ZEROGPU turns ZeroGPU mode off as everywhere)
    zerogpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true") and not os.environ.get("PLLAVA_NO_ZEROGPU")
    return "4bit" if device_type == "cuda" and not zerogpu else "none"


CPU_DTYPES = ("auto", "float32", "bfloat16")


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 AMX or AVX512-BF16, per /proc/cpuinfo): there
    bfloat16 reads prompts faster than float32 (see bench/README.md); elsewhere it is emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def check_cpu_dtype(name: str) -> str:
    if name not in CPU_DTYPES:
        raise CheckpointError(f"cpu_dtype must be one of {', '.join(CPU_DTYPES)}, got {name!r}.")
    return name


def _cpu_dtype(files: list[Path]) -> torch.dtype:
    """float32 where it fits comfortably in RAM (faster and exact on CPU), else bfloat16."""
    stored = sum(f.stat().st_size for f in files)  # bf16 on disk: float32 needs about twice this
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 0
    return torch.float32 if avail and 2 * stored < 0.5 * avail else torch.bfloat16


def _load_tokenizer(path: Path, spec: VideoModelSpec, notes: list[str]):
    """The checkpoint's tokenizer, checked against the config; None (with a note) when the folder has
    none: the network itself still runs on token ids, but chatting needs a tokenizer.

    A tokenizer.json is used exactly as saved, as transformers 4 (the official demo) did. Transformers 5's
    AutoTokenizer does so only when config.json's model_type is on its list of models with a wrong
    tokenizer_class ("llava" is); otherwise it rebuilds a LlamaTokenizer with its own pipeline (a Metaspace
    pre-tokenizer, not the release's Prepend + Replace normaliser), one "▁" fewer after <image> and </s>.
    Transformers 4's LlamaTokenizerFast also set BOS/EOS from add_bos_token/add_eos_token (default on/off),
    which transformers 5 ignores next to a tokenizer.json. A folder without tokenizer.json, or whose config
    sets add_prefix_space (transformers 4 then converted tokenizer.model), goes through AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        notes.append(f"{path} has no tokenizer files: the model runs on token ids only (no chat).")
        log.warning(notes[-1])
        return None
    try:
        config_file = path / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        if not isinstance(config, dict):
            raise ValueError("tokenizer_config.json is not a JSON object")
        if (path / "tokenizer.json").exists() and config.get("add_prefix_space") is None:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
            if config.get("tokenizer_class") in ("LlamaTokenizer", "LlamaTokenizerFast"):
                tokenizer.add_bos_token = bool(config.get("add_bos_token", True))
                tokenizer.add_eos_token = bool(config.get("add_eos_token", False))
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as e:  # tokenizer classes raise many types; the user needs one line
        raise CheckpointError(f"The tokenizer in {path} could not be loaded: {str(e).splitlines()[0][:200]}") from e
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    if image_id != spec.image_token_index:
        raise CheckpointError(
            f"The tokenizer maps '<image>' to {image_id} but config.json says image_token_index "
            f"{spec.image_token_index}."
        )
    return tokenizer


# -- the entry point ----------------------------------------------------------------------------
def load_pllava(
    source: str | os.PathLike,
    *,
    device: Device | str = "auto",
    quantization: Quantization = "auto",
    lora_alpha: float | None = None,
    dtype: torch.dtype | None = None,
    cpu_dtype: str = "auto",
) -> LoadedPllava:
    """Load a PLLaVA (or plain LLaVA) checkpoint from a folder or a Hub repo id.

    quantization="auto" is 4-bit nf4 on CUDA and none on CPU; lora_alpha=None takes the official 4.
    cpu_dtype (on CPU, when dtype is not given): "auto" is float32 where it fits in RAM, else bfloat16;
    "float32" / "bfloat16" force it.
    """
    from accelerate import init_empty_weights
    from safetensors import safe_open

    if quantization not in ("auto", "none", "4bit"):
        raise CheckpointError(f"quantization must be 'auto', 'none' or '4bit', got {quantization!r}.")
    path = resolve_source(source)
    cfg = read_config(path)
    files = weight_files(path)
    family = family_of(cfg, _stored_keys(path, files))
    lora_rank = 0
    for file in files if family.lora_targets else ():
        with safe_open(str(file), framework="pt", device="cpu") as f:
            lora_key = next((k for k in f.keys() if ".lora_A." in k), None)
            if lora_key:
                lora_rank = int(f.get_slice(lora_key).get_shape()[0])
                break
    if lora_alpha is not None:
        lora_alpha = check_lora_alpha(lora_alpha)
    spec = spec_from_config(cfg, lora_rank, lora_alpha)  # the alpha asked for at load is the default
    dev = _pick_device(str(device))
    quant = auto_quantization(dev.type) if quantization == "auto" else quantization
    if dtype is None:
        if dev.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            choice = check_cpu_dtype(cpu_dtype)
            if quant == "4bit" or choice == "bfloat16":
                dtype = torch.bfloat16
            else:
                dtype = torch.float32 if choice == "float32" else _cpu_dtype(files)
    notes = []
    if dev.type == "cpu" and sum(f.stat().st_size for f in files) > 2**30:
        notes.append(f"Running on CPU in {str(dtype).replace('torch.', '')}: expect minutes per answer.")
        warnings.warn(notes[-1], stacklevel=2)

    vision_config, text_config = _hf_configs(cfg)
    with init_empty_weights(include_buffers=False):
        model = PllavaModel(spec, vision_config, text_config)
    if lora_rank:
        attach_lora(model.language_model, lora_rank, spec.default_lora_alpha, family.lora_targets)
    kept = kept_vision_layers(vision_config.num_hidden_layers, spec.vision_feature_layer)
    n = _load_weights(model, family, files, dev, dtype, quant == "4bit", kept)
    for module in model.modules():  # non-persistent buffers (rotary, position ids) were built on CPU
        for name, buf in list(module._buffers.items()):
            if buf is not None and buf.device != dev:
                module._buffers[name] = buf.to(dev)
    model.eval().requires_grad_(False)
    log.info("loaded %d tensors from %s", n, path)

    pixels = read_pixel_spec(path, int(vision_config.image_size), notes)
    tokenizer = _load_tokenizer(path, spec, notes)
    context = _context_length(text_config)
    is_tiny = bool(cfg.get("pllava_demo_tiny", False))
    if is_tiny:
        notes.append("This is a tiny random test model: its answers are random text.")
        log.warning(notes[-1])
    return LoadedPllava(
        model=model, tokenizer=tokenizer, spec=spec, path=path, name=str(source),
        device=dev, dtype=dtype, quantization=quant, context_length=context, is_tiny=is_tiny, notes=notes,
        family=family, pixels=pixels,
    )


__all__ = ["LoadedPllava", "load_pllava", "canonical_key", "resolve_source", "LoRALinear"]
