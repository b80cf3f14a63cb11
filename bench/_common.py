"""Shared pieces of the benchmarks: random checkpoints of any size in the official on-disk layout,
the official demo's per-turn work rebuilt from our own parts, timing helpers and table printing.

It knows the checkpoint LAYOUT (key names, shards, config.json) but loads nothing: loading is
always pllava_demo.network.checkpoint.load_pllava, so the benchmarks measure our loader. It does not import
av at module level (the GPU machine has no PyAV): video helpers import it when called.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- model sizes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Size:
    """Widths and depths of a random PLLaVA. The CLIP grid is always the real 336 px / 14 px (24x24)."""

    name: str
    clip_hidden: int
    clip_intermediate: int
    clip_layers: int  # as in config.json; the model runs clip_layers - 1 (feature layer -2)
    clip_heads: int
    llm_hidden: int
    llm_intermediate: int
    llm_layers: int
    llm_heads: int
    llm_kv_heads: int
    vocab: int  # LLM vocab (>= the tokenizer's); the real one is 32064
    lora_rank: int

    def scaled(self, scale: float) -> "Size":
        """Narrower and shallower by `scale` (widths keep head_dim; depth at least 2), for CPU dry runs."""
        def w(x, heads):  # keep the head count's multiple
            return max(heads, int(round(x * scale / heads)) * heads)
        clip_heads = max(1, int(round(self.clip_heads * scale)))
        llm_heads = max(1, int(round(self.llm_heads * scale)))
        return Size(
            f"{self.name} x{scale:g}", w(self.clip_hidden, clip_heads), _mult64(self.clip_intermediate * scale),
            max(2, int(round(self.clip_layers * scale))), clip_heads, w(self.llm_hidden, llm_heads),
            _mult64(self.llm_intermediate * scale), max(2, int(round(self.llm_layers * scale))), llm_heads,
            llm_heads, self.vocab, max(2, int(round(self.lora_rank * scale))),
        )


def _mult64(x: float) -> int:
    """bitsandbytes' CPU 4-bit kernel needs out_features divisible by its block (asserts otherwise)."""
    return max(64, int(round(x / 64)) * 64)


# PLLaVA-7B: CLIP ViT-L/14-336, Vicuna-7B (Llama), LoRA r=128 on q/v.
PLLAVA_7B = Size("pllava-7b shapes", 1024, 4096, 24, 16, 4096, 11008, 32, 32, 32, 32064, 128)
# A CPU-sized model whose costs keep roughly 7B's proportions (CLIP about 1/5 of a full prefill).
SMALL = Size("small", 128, 512, 4, 4, 512, 1376, 4, 8, 8, 32064, 128)


def _llm_and_clip_configs(size: Size, vocab: int):
    from transformers import CLIPVisionConfig, LlamaConfig

    vision = CLIPVisionConfig(
        hidden_size=size.clip_hidden, intermediate_size=size.clip_intermediate, num_hidden_layers=size.clip_layers,
        num_attention_heads=size.clip_heads, image_size=336, patch_size=14, projection_dim=768,
    )
    text = LlamaConfig(
        hidden_size=size.llm_hidden, intermediate_size=size.llm_intermediate, num_hidden_layers=size.llm_layers,
        num_attention_heads=size.llm_heads, num_key_value_heads=size.llm_kv_heads, vocab_size=max(vocab, size.vocab),
        max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5,
    )
    return vision, text


def _random_like(name: str, shape, generator, device, dtype) -> torch.Tensor:
    if re.search(r"(norm|layrnorm|layer_norm)[^.]*\.weight$", name):
        return torch.ones(shape, dtype=dtype)
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=dtype)
    t = torch.randn(shape, generator=generator, device=device, dtype=torch.float32) * 0.02
    return t.to(dtype).cpu()


def write_random_checkpoint(directory, size: Size, *, dtype=torch.bfloat16, shard_bytes: int = 2 << 30,
                            device: str = "cpu", seed: int = 0) -> Path:
    """Write a random PLLaVA in the official layout (PEFT-wrapped LLM keys with LoRA, safetensors
    shards + index, config.json with the release's fields, the tiny test tokenizer), streaming
    tensors shard by shard so a 7B-shaped model never sits whole in host memory.
    `device` is where the random numbers are drawn (cuda is much faster for 7B)."""
    from accelerate import init_empty_weights
    from transformers import CLIPVisionModel, LlamaForCausalLM

    from pllava_demo.network.families import PLLAVA_RELEASE, clip_keys, llm_keys
    from pllava_demo.network.tiny import build_tokenizer, write_processor_files

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer("vicuna")
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    vision, text = _llm_and_clip_configs(size, len(tokenizer) + 8)
    with init_empty_weights():
        clip = CLIPVisionModel(vision).state_dict()
        llm = LlamaForCausalLM(text).state_dict()
    d_v, d_t = size.clip_hidden, text.hidden_size
    projector = {"multi_modal_projector.linear_1.weight": (d_t, d_v), "multi_modal_projector.linear_1.bias": (d_t,),
                 "multi_modal_projector.linear_2.weight": (d_t, d_t), "multi_modal_projector.linear_2.bias": (d_t,)}
    gen = torch.Generator(device=device).manual_seed(seed)

    def lora(stem, shape):  # meta tensors: shapes only, drawn below as each is written
        out_f, in_f = shape
        return torch.empty(size.lora_rank, in_f, device="meta"), torch.empty(out_f, size.lora_rank, device="meta")

    shapes = [*clip_keys(clip), *((k, torch.empty(s, device="meta")) for k, s in projector.items()), *llm_keys(llm, lora)]
    PLLAVA_RELEASE.write_weights(out, ((k, _random_like(k, tuple(t.shape), gen, device, dtype)) for k, t in shapes),
                                 shard_bytes=shard_bytes)
    v = {k: vision.to_dict()[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                          "image_size", "patch_size", "projection_dim", "layer_norm_eps", "hidden_act")}
    v["model_type"] = "clip_vision_model"
    t = {k: text.to_dict()[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "vocab_size", "max_position_embeddings", "pad_token_id",
                                        "bos_token_id", "eos_token_id", "rms_norm_eps")}
    t["model_type"] = "llama"
    cfg = {
        "model_type": "llava", "image_token_index": image_token,
        "projector_hidden_act": "gelu", "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
        "vision_config": v, "text_config": t, "pad_token_id": 0, "torch_dtype": "bfloat16",
        **PLLAVA_RELEASE.config_fields(pooling_shape=(16, 12, 12), num_frames=16),
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}))
    write_processor_files(out, PLLAVA_RELEASE)
    tokenizer.save_pretrained(str(out))
    return out


def checkpoint(kind: str, base: Path | None = None) -> Path:
    """A cached random checkpoint under bench/out/ckpt-<kind>: 'tiny' (make_tiny) or 'small'."""
    from pllava_demo.network.tiny import make_tiny

    path = (base or OUT) / f"ckpt-{kind}"
    if (path / "config.json").exists():
        return path
    tmp = path.with_name(path.name + ".part")
    if kind == "tiny":
        make_tiny(tmp)
    elif kind == "small":
        write_random_checkpoint(tmp, SMALL)
    else:
        raise ValueError(f"kind must be 'tiny' or 'small', got {kind!r}")
    tmp.rename(path)
    return path


# -- video ----------------------------------------------------------------------------------------
def bench_video(seconds: int = 30, width: int = 640, height: int = 360, fps: int = 24) -> Path:
    from tests.videos import write_long_video

    path = OUT / f"turns_{seconds}s_{width}x{height}_{fps}fps.mp4"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.mp4")
        write_long_video(tmp, seconds=seconds, fps=fps, width=width, height=height, keyframe_every_s=2)
        tmp.rename(path)
    return path


def official_decode(path, num_frames: int):
    """The official loader's work with PyAV in place of decord: one frame per second of the WHOLE
    video converted to RGB and thrown away, then the N sampled frames (our read_video, which is at
    least as fast as decord's get_batch seeking)."""
    import av
    import numpy as np

    from pllava_demo.frames.video import read_video

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = stream.frames
        fps = float(stream.average_rate)
        per_second = set(np.linspace(0, n - 1, max(1, int(n / fps))).astype(int).tolist())
        buffer = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in per_second]
        del buffer
    return read_video(path, num_frames)


# -- timing ---------------------------------------------------------------------------------------
def median(xs):
    return statistics.median(xs)


@contextmanager
def first_token_clock(engine_module):
    """Patch the scheduler's Job.tokens (what every ask() reads its ids from) so each answer records
    the perf_counter of its first token id (the moment the reader gets it, before TextStream may hold
    text back) and of every later one."""
    job_class = engine_module.Job
    original = job_class.tokens
    marks: list[list[float]] = []

    def timed(self):
        times: list[float] = []
        marks.append(times)
        for token in original(self):
            times.append(time.perf_counter())
            yield token

    job_class.tokens = timed
    try:
        yield marks
    finally:
        job_class.tokens = original


def drain(stream) -> None:
    for _ in stream:
        pass


def at_once(calls) -> tuple[float, list[float]]:
    """Runs the callables in threads released at the same moment; returns (that moment, each one's end),
    perf_counter times. An exception in one is raised here, once all have ended."""
    import threading

    start, ends, errors = threading.Barrier(len(calls) + 1), [0.0] * len(calls), []

    def run(i):
        start.wait()
        try:
            calls[i]()
        except BaseException as e:  # noqa: BLE001 - raised below, once every thread has ended
            errors.append(e)
        ends[i] = time.perf_counter()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return t0, ends


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    import platform

    cpus = os.cpu_count()
    try:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):
        mem = 0
    return f"{platform.processor() or platform.machine()}, {cpus} cores, {mem:.0f} GiB, torch {torch.__version__}"


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    body = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


# -- memory and bandwidth (used by bench_gpu.py) ---------------------------------------------------
def _proc_status_kib(*fields: str) -> dict[str, int]:
    """Fields of /proc/self/status in KiB (Linux); empty where the file is absent."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in fields:
                    out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out


class PeakHostMemory:
    """Peak resident memory of this process while the `with` block runs, sampled every `every` seconds
    from /proc/self/status (RSS, and its anonymous part: file pages such as mmapped safetensors shards
    are counted in RSS but can be given back by the kernel). The kernel's own high-water mark (VmHWM) is
    reset at entry where the kernel allows it, so a short spike between two samples is not missed."""

    def __init__(self, every: float = 0.01):
        import threading

        self.every = every
        self.before_gib = self.peak_gib = self.peak_anon_gib = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rss = self._anon = 0
        self._hwm_reset = False

    def _sample(self) -> None:
        s = _proc_status_kib("VmRSS", "RssAnon")
        self._rss = max(self._rss, s.get("VmRSS", 0))
        self._anon = max(self._anon, s.get("RssAnon", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "PeakHostMemory":
        self.before_gib = _proc_status_kib("VmRSS").get("VmRSS", 0) / 2**20
        try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0); not every sandbox allows it
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._hwm_reset = True
        except OSError:
            pass
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._hwm_reset:
            self._rss = max(self._rss, _proc_status_kib("VmHWM").get("VmHWM", 0))
        self.peak_gib, self.peak_anon_gib = self._rss / 2**20, self._anon / 2**20


def copy_bandwidth(device: torch.device, nbytes: int = 2 << 30, iters: int = 10) -> float:
    """Measured memory bandwidth in bytes/s: a device-to-device copy of `nbytes` of random data,
    counting bytes read plus bytes written, median of `iters` after a warm-up (CUDA events on a GPU)."""
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()  # not zeros: see METHOD.md
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            dst.copy_(src)
            times.append(time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / median(times)
