"""`eval --ray`: the sweep's clips spread over Ray actors, for more questions than one machine answers.

    clip groups -> actors (one per GPU when the cluster has GPUs, else CPU), each with the model loaded
    once and the plain run's `Sweep` (decode, encode once, every setting's rows batched) -> rows streamed
    back to the driver -> the same resumable JSONL writer

An actor does exactly the plain run's work per clip (`Sweep.prepare` + `Sweep.run_clip`), so rows are
the same; the driver writes each as it arrives (flush + fsync), so a lost cluster keeps what is written.
Ray itself comes from caption/on_ray.py (`init_ray`, the runtime env that ships this package).

Knows Ray and the sweep; reads the parsed args only in `run_ray`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from .datasets import Item
from .runner import Setting, Sweep


def _item(d: dict) -> Item:
    d = dict(d)
    for key in ("questions", "asked"):
        d[key] = tuple(d[key])
    d["bound"] = tuple(d["bound"]) if d["bound"] is not None else None
    return Item(**d)


class EvalActor:
    """Loads the checkpoint once; answers every (question, setting) of a batch of clip groups."""

    def __init__(self, model: str, device: str, quantization: str, cpu_dtype: str, protocol: str, kind: str,
                 settings: list, frames: int, rows: int):
        import torch

        from ..chat.engine import Engine
        from ..network.checkpoint import load_pllava
        from .protocols import protocol_for

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        engine = Engine(load_pllava(model, device=device, quantization=quantization, cpu_dtype=cpu_dtype),
                        batching=True, max_rows=rows)
        chosen = protocol_for(kind, engine.format.name)
        if chosen.name != protocol:
            raise RuntimeError(f"the actor's checkpoint reads {chosen.name}, the driver's {protocol}")
        self.settings = [Setting(alpha, engine.strategy(strategy)) for alpha, strategy in settings]
        self.sweep = Sweep(engine, chosen, self.settings, num_frames=frames)

    def __call__(self, batch: dict) -> dict:
        out = []
        for text in batch["group"]:
            group = [(_item(d), [self.settings[i] for i in which]) for d, which in json.loads(text)]
            prep = self.sweep.prepare([item for item, _ in group])
            rows = self.sweep.run_clip(prep, {id(item): settings for item, settings in group})
            out.append(json.dumps(rows, ensure_ascii=False))
        return {"rows": np.array(out, dtype=object)}


def run_ray(args, sweep: Sweep, todo: list, write: Callable[[dict], None]) -> int:
    """Run `todo` ((item, settings) pairs) on Ray, writing each row as it arrives; returns how many."""
    from ..caption.on_ray import _ray, init_ray
    from ..errors import InputError

    if not todo:
        return 0
    ray = _ray()
    init_ray(args.ray_address)
    gpus = 0 if args.device == "cpu" else int(ray.cluster_resources().get("GPU", 0))
    if args.device == "cuda" and not gpus:
        raise InputError("--device cuda was asked for but the Ray cluster has no GPU.")
    index = {s: i for i, s in enumerate(sweep.settings)}
    groups: dict[tuple, list] = {}
    for item, settings in todo:
        groups.setdefault(item.clip_key, []).append([dataclasses.asdict(item), [index[s] for s in settings]])
    ds = ray.data.from_items([{"group": json.dumps(g)} for g in groups.values()],
                             override_num_blocks=max(1, min(len(groups), 1000)))
    specs = [(s.alpha, s.strategy.as_dict()) for s in sweep.settings]
    actors = args.actors or max(1, gpus)
    ds = ds.map_batches(
        EvalActor,
        fn_constructor_kwargs={"model": args.model, "device": "cuda" if gpus else args.device,
                               "quantization": args.quantization, "cpu_dtype": args.cpu_dtype,
                               "protocol": sweep.protocol.name, "kind": sweep.protocol.name.split("-")[0],
                               "settings": specs, "frames": sweep.num_frames, "rows": args.batch_size},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0, num_cpus=1,
    )
    written = 0
    for record in ds.iter_rows():
        for row in json.loads(record["rows"]):
            write(row)
            written += 1
    return written
