"""PLLaVA Studio: talk with a video through PLLaVA (pooled LLaVA with live LoRA strength).

Public API: load_pllava, read_video, Engine, VideoError, CheckpointError. Heavy modules
(torch, transformers, av) load on first use so `import pllava_demo` stays fast.
"""

from .errors import CheckpointError, InputError, PllavaError, VideoError

__all__ = ["load_pllava", "read_video", "Engine", "GenerationSettings", "make_tiny",
           "VideoError", "CheckpointError", "InputError", "PllavaError"]

_LAZY = {
    "load_pllava": ("network.checkpoint", "load_pllava"),
    "read_video": ("frames.video", "read_video"),
    "Engine": ("chat.engine", "Engine"),
    "GenerationSettings": ("config", "GenerationSettings"),
    "make_tiny": ("network.tiny", "make_tiny"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pllava_demo' has no attribute {name!r}")
