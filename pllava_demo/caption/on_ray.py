"""`caption --ray`: the batch captioner as a Ray Data pipeline, for more videos than one machine holds.

    paths -> decode + preprocess on CPU tasks -> caption on actors (one GPU each when the cluster
    has GPUs, else CPU) -> records streamed back to the driver -> the same resumable JSONL writer

The work done per video is exactly the plain run's (`caption.prepare_video` and
`Captioner.caption_batch`), so both write the same captions. The driver writes every record as it
arrives, with the same flush + fsync per line, so Ctrl-C or a lost cluster keeps what is written and
a rerun skips it. Parquet is written from that JSONL at the end (caption.write_parquet).

The only module that imports ray (an optional extra: pip install -r requirements-ray.txt). It knows
nothing of argparse beyond reading the parsed args in `run_ray`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from .captioner import CaptionOptions, Captioner, Prepared, prepare_video
from .records import CaptionJob, CaptionWriter
from ..errors import InputError
from ..frames.preprocess import CLIP_PIXELS, PixelSpec

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "HF_TOKEN", "TOKENIZERS_PARALLELISM", "HF_HUB_CACHE")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("--ray needs Ray Data: pip install -r requirements-ray.txt") from None
    return ray


def runtime_env() -> dict:
    """Ship this package to the workers (they need not have it installed) with the Hub settings."""
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    return {"py_modules": [str(PACKAGE_DIR)], "env_vars": env}


def init_ray(address: str | None = None, **kwargs) -> None:
    """Connect to a cluster at `address`, or start Ray on this machine; no-op if already connected."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address is None:
        kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, runtime_env=runtime_env(), **kwargs)


# -- the stages (plain functions and a class, run by Ray) ----------------------------------------
def decode_row(row: dict, num_frames: int, pixels: PixelSpec = CLIP_PIXELS, strategy=None) -> dict:
    """CPU stage: one path -> preprocessed pixels (T + K, 3, 336, 336) float32 (K: the strategy's own
    images), or the error."""
    item = prepare_video(CaptionJob(row["path"], row["prompt"] or None), num_frames, pixels, strategy)
    pixels = item.pixels.numpy() if item.pixels is not None else np.zeros((0, 3, 336, 336), np.float32)
    return {"path": row["path"], "prompt": row["prompt"], "pixels": pixels,
            "timestamps": json.dumps(list(item.timestamps)), "duration": item.duration,
            "decode_seconds": item.decode_seconds, "error": item.error or "", "error_type": item.error_type or "",
            "extra": item.extra}


def _decode_resources() -> dict:
    return {"num_cpus": 1}


class CaptionActor:
    """Model stage: loads the checkpoint once per actor, captions a batch of decoded rows."""

    def __init__(self, model: str, device: str, quantization: str, lora_alpha, options: CaptionOptions,
                 cpu_dtype: str = "auto"):
        import torch

        from ..network.checkpoint import load_pllava

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.captioner = Captioner(load_pllava(model, device=device, quantization=quantization,
                                               lora_alpha=lora_alpha, cpu_dtype=cpu_dtype), options)

    def __call__(self, batch: dict) -> dict:
        import torch

        items = []
        for i, path in enumerate(batch["path"]):
            job = CaptionJob(str(path), str(batch["prompt"][i]) or None)
            if batch["error"][i]:
                items.append(Prepared(job, error=str(batch["error"][i]), error_type=str(batch["error_type"][i]),
                                      decode_seconds=float(batch["decode_seconds"][i])))
                continue
            pixels = torch.from_numpy(np.ascontiguousarray(batch["pixels"][i]))  # (T, 3, 336, 336)
            items.append(Prepared(job, pixels, tuple(json.loads(batch["timestamps"][i])),
                                  float(batch["duration"][i]), float(batch["decode_seconds"][i]),
                                  extra=int(batch["extra"][i])))
        records = self.captioner.caption_batch(items)
        return {"record": np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)}


def build_dataset(jobs: list[CaptionJob], *, model: str, device: str, quantization: str, lora_alpha,
                  options: CaptionOptions, batch_size: int, actors: int, gpus_per_actor: float,
                  cpu_dtype: str = "auto"):
    """The lazy Ray Data pipeline; iterate it (or write it) to run."""
    ray = _ray()
    rows = [{"path": j.path, "prompt": j.prompt or ""} for j in jobs]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 1000)))
    # A remote-args function stops Ray from fusing decoding into the caption actors (its fusion rule
    # skips ops that have one), so decoding runs in separate CPU tasks, ahead of and beside the model.
    from ..network.checkpoint_config import frames_room_for, pixel_spec_for

    pixels = pixel_spec_for(model)  # the checkpoint's own, read before any weight is loaded
    if options.num_frames is None:  # the actors' Captioner would fit the same count; the decoders need it now
        from ..config import DEFAULT_FRAMES
        from ..frames.strategies import parse

        grid, context = frames_room_for(model)
        visual = parse(options.strategy or options.pooling_shape, options.pooling_shape or (16, 12, 12))
        options = replace(options, num_frames=visual.fitted_frames(DEFAULT_FRAMES, grid, context)[0])
    images = options.strategy if options.strategy is not None and options.strategy.changes_frames else None
    ds = ds.map(decode_row, fn_kwargs={"num_frames": options.num_frames, "pixels": pixels, "strategy": images},
                ray_remote_args_fn=_decode_resources)
    return ds.map_batches(
        CaptionActor,
        fn_constructor_kwargs={"model": model, "device": "cuda" if gpus_per_actor else device,
                               "quantization": quantization, "lora_alpha": lora_alpha, "options": options,
                               "cpu_dtype": cpu_dtype},
        batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus_per_actor, num_cpus=1,
    )


def run_ray(args, options: CaptionOptions, jobs: list[CaptionJob], writer: CaptionWriter,
            on_record: Callable[[dict], None] | None = None) -> int:
    """Caption `jobs` on Ray and append each record to `writer` as it arrives; returns how many."""
    if not jobs:
        return 0
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}.")
    ray = _ray()
    init_ray(args.ray_address)
    if args.device == "cpu":
        gpus = 0
    else:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if args.device == "cuda" and not gpus:
            raise InputError("--device cuda was asked for but the Ray cluster has no GPU.")
    actors = args.actors or max(1, gpus)
    log.info("Ray: %d captioning actor(s), %s", actors, f"{gpus} GPU(s)" if gpus else "CPU only")
    ds = build_dataset(jobs, model=args.model, device=args.device, quantization=args.quantization,
                       lora_alpha=args.lora_alpha, options=options, batch_size=args.batch_size, actors=actors,
                       gpus_per_actor=1 if gpus else 0, cpu_dtype=args.cpu_dtype)
    written = 0
    for row in ds.iter_rows():
        record = json.loads(row["record"])
        writer.write(record)
        written += 1
        if on_record:
            on_record(record)
    return written
