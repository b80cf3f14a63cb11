"""Which device, quantization and dtype a checkpoint is loaded with: `pick_device` checks what was
asked for against what is visible, `auto_quantization` says what "auto" means, `choose_dtype` picks
the compute dtype (on CPU: what was asked for, else what fits in RAM), and `cpu_has_bf16` reads
/proc/cpuinfo for the page's hint on whether bfloat16 is native here.

It knows torch's devices and the host's memory and CPU flags; it does not read checkpoint files (only
their sizes) nor place any tensor (weights.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch

from ..errors import CheckpointError
from ..settings import CPU_DTYPE

Device = Literal["auto", "cpu", "cuda"]
Quantization = Literal["auto", "none", "4bit"]


def pick_device(device: str) -> torch.device:
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


CPU_DTYPES = CPU_DTYPE.choices  # the choices, their check and its sentence: settings.py


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 AMX or AVX512-BF16, per /proc/cpuinfo): there
    bfloat16 reads prompts faster than float32 (see bench/README.md); elsewhere it is emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def check_cpu_dtype(name: str) -> str:
    return CPU_DTYPE.check(name, error=CheckpointError)


def cpu_dtype_for(files: list[Path]) -> torch.dtype:
    """float32 where it fits comfortably in RAM (faster and exact on CPU), else bfloat16."""
    stored = sum(f.stat().st_size for f in files)  # bf16 on disk: float32 needs about twice this
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 0
    return torch.float32 if avail and 2 * stored < 0.5 * avail else torch.bfloat16


def choose_dtype(dev: torch.device, quant: str, cpu_dtype: str, files: list[Path],
                 dtype: torch.dtype | None = None) -> torch.dtype:
    """The compute dtype: `dtype` when given; on CUDA bfloat16 where supported, else float16; on CPU
    bfloat16 for 4-bit or when asked, float32 when asked, else by what fits in RAM (cpu_dtype_for)."""
    if dtype is None:
        if dev.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            choice = check_cpu_dtype(cpu_dtype)
            if quant == "4bit" or choice == "bfloat16":
                dtype = torch.bfloat16
            else:
                dtype = torch.float32 if choice == "float32" else cpu_dtype_for(files)
    return dtype
