"""`python -m pllava_demo eval {mvbench, mc, open}`: the parser and the command (registered in
pllava_demo/cli.py). Reads argv only here; progress and notices go to stderr, the table to stdout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import InputError

KINDS = {"mvbench": "MVBench in its own layout (DIR/json/*.json + DIR/video/...)",
         "mc": "multiple choice from a JSONL file (video, question, options, answer; optional start/end)",
         "open": "open-ended QA: VCG's folder, the VideoQA folder (ActivityNet-QA, ...) or a JSONL file"}


def add_parser(sub) -> None:
    from ..cli import _model_args
    from ..frames.strategies import NAMES
    from ..settings import NUM_FRAMES, add_flags

    p = sub.add_parser("eval", help="benchmarks with the official PLLaVA protocols, swept over LoRA alpha and strategies")
    kinds = p.add_subparsers(dest="eval_kind", required=True)
    for kind, what in KINDS.items():
        k = kinds.add_parser(kind, help=what, conflict_handler="resolve")
        k.add_argument("--data", required=True, help="the benchmark's folder or JSONL file")
        k.add_argument("--out", default=f"{kind}_results.jsonl", help="JSONL rows; rows already there are skipped (default: %(default)s)")
        if kind == "mvbench":
            k.add_argument("--tasks", default=None, help="comma-separated MVBench task names (default: every task found)")
        _model_args(k)
        k.add_argument("--lora-alpha", default="4", help="comma-separated LoRA alphas to sweep (default 4, the official; "
                                                         "the paper's curve: 0,4,8,16,20,32)")
        k.add_argument("--strategy", nargs="+", default=["pllava"], help=f"strategies to sweep: {', '.join(NAMES)}")
        k.add_argument("--pooling", nargs="+", default=None, help="pllava pooling shapes to sweep, e.g. 16,12,12 8,12,12")
        add_flags(k, [NUM_FRAMES])  # frames per clip: the official 16 by default
        k.add_argument("--batch-size", type=int, default=8, help="answers decoded together (default: %(default)s)")
        k.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="clip-decoding threads")
        k.add_argument("--limit", type=int, default=None, help="run at most this many new questions")
        k.add_argument("--retry-errors", action="store_true", help="run again the rows recorded with an error")
        k.add_argument("--ray", action="store_true", help="spread the clips over Ray actors (pip install -r requirements-ray.txt)")
        k.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")
        k.add_argument("--actors", type=int, default=None, help="with --ray: model actors (default: one per GPU, else 1)")
        if kind == "open":
            k.add_argument("--judge-url", default=None, help="OpenAI-compatible API base URL, e.g. https://api.openai.com/v1")
            k.add_argument("--judge-model", default="gpt-3.5-turbo-0125", help="judge model (official: %(default)s)")
            k.add_argument("--judge-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
        k.set_defaults(func=run)


def _alphas(text: str) -> list[float]:
    from ..settings import LORA_ALPHA

    try:
        return [LORA_ALPHA.parse(a) for a in text.split(",") if a.strip()]
    except InputError as e:
        raise InputError(f"--lora-alpha takes numbers like 0,4,8,16,20,32: {e}") from None


def _strategies(args) -> list:
    from ..cli import parse_pooling
    from ..frames.strategies import PllavaPooling, make

    names = [n for s in args.strategy for n in s.split(",") if n]
    out = []
    for name in dict.fromkeys(names):
        if name == "pllava":
            out += [None] if not args.pooling else [PllavaPooling(parse_pooling(p)) for p in args.pooling]
        else:
            out.append(make(name))
    if args.pooling and "pllava" not in names:
        raise InputError("--pooling is a setting of the pllava strategy; add pllava to --strategy.")
    return out


def _items(args):
    from . import datasets

    if args.eval_kind == "mvbench":
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        return datasets.read_mvbench(args.data, tasks)
    if args.eval_kind == "mc":
        return datasets.read_mc_jsonl(args.data)
    return datasets.read_open(args.data)


def run(args) -> int:
    from tqdm import tqdm

    from ..chat.engine import Engine
    from ..network.checkpoint import load_pllava
    from .plot import draw
    from .protocols import protocol_for
    from .results import RowWriter
    from .runner import Setting, Sweep, run_sweep
    from .summary import as_text, summarise, write_summary

    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1.")
    items = _items(args)
    alphas, strategies = _alphas(args.lora_alpha), _strategies(args)
    judge = _judge(args)
    interrupted = False
    with RowWriter(args.out, retry_errors=args.retry_errors) as writer:
        loaded = load_pllava(args.model, device=args.device, quantization=args.quantization, cpu_dtype=args.cpu_dtype)
        print(f"Loaded {loaded.describe()}", file=sys.stderr)
        engine = Engine(loaded, batching=True, max_rows=args.batch_size)
        kind = {"mvbench": "mvbench", "mc": "mvbench"}.get(args.eval_kind) or (
            "vcg" if any(i.task in ("generic_qa", "temporal_qa", "consistency_qa") for i in items[:1]) else "videoqa")
        protocol = protocol_for(kind, engine.format.name)
        settings = [Setting(engine.check_alpha(a), engine.strategy(s)) for s in strategies for a in alphas]
        settings = list(dict.fromkeys(settings))  # a model without LoRA has one alpha (None)
        sweep = Sweep(engine, protocol, settings, num_frames=args.frames)
        todo = sweep.todo(items, writer, args.limit)
        total = sum(len(s) for _, s in todo)
        print(f"{len(items)} question(s) x {len(settings)} setting(s): {total} row(s) to run, "
              f"{len(writer.rows)} already in {args.out}", file=sys.stderr)
        bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)

        def write(row):
            writer.write(row)
            if "error" in row:
                bar.write(f"error in {row['video']}: {row['error']}", file=sys.stderr)
            bar.update(1)

        try:
            if args.ray:
                from .on_ray import run_ray

                run_ray(args, sweep, todo, write)
            else:
                stats = run_sweep(sweep, todo, write, workers=args.workers)
                print(f"clips decoded {stats['clips_decoded']}, encoded {stats['clips_encoded']}, rows {stats['rows']}",
                      file=sys.stderr)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        if judge is not None and not interrupted:
            _judge_rows(judge, writer)
        summary = summarise(writer.rows.values())
    print(as_text(summary))
    stem = Path(args.out).with_suffix("")
    paths = write_summary(summary, str(stem) + ".summary")
    png = draw(summary, str(stem) + ".alpha.png")
    print(f"Wrote {', '.join(map(str, paths + ([png] if png else [])))}", file=sys.stderr)
    if interrupted:
        print(f"Interrupted: every finished row is in {args.out}; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def _judge(args):
    from .judge import Judge

    if getattr(args, "judge_url", None) is None:
        return None
    return Judge(args.judge_url, args.judge_model, os.environ.get(args.judge_key_env))


def _judge_rows(judge, writer) -> None:
    from tqdm import tqdm

    todo = [r for r in writer.rows.values() if r["kind"] == "open" and "error" not in r and "judge" not in r]
    for row in tqdm(todo, unit="row", desc="judge", file=sys.stderr, dynamic_ncols=True):
        writer.write({**row, "judge": judge.score_row(row)})
