"""Command line: `python -m pllava_demo {ask, chat, make-tiny, caption}`; every command is here.

The only place (with app.py) that reads argv and the environment. Answers stream to stdout;
progress and notices go to stderr so stdout can be piped.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .chapters import cli as chapters_cli
from .errors import PllavaError
from .frames.strategies import NAMES, STRATEGIES, PllavaPooling, make
from .settings import (DEFAULT_FRAMES, END_S, GENERATION, LORA_ALPHA, MODEL, NUM_FRAMES, START_S, VIEW, add_flags,
                       from_args)


def _model_args(p: argparse.ArgumentParser) -> None:
    """Which model, on what (--model, --device, --quantization, --cpu-dtype, --threads, --lora-alpha)."""
    add_flags(p, [*MODEL.values(), LORA_ALPHA])


def _range_args(p: argparse.ArgumentParser) -> None:
    """Focus on a part of one video (ask and chat; captioning samples whole videos)."""
    add_flags(p, [START_S, END_S])


def _gen_args(p: argparse.ArgumentParser) -> None:
    """--frames (default: the official count, or the most the strategy fits), the strategy, how to pick
    tokens (all but --min-new-tokens, which only captioning has) and the system prompt."""
    add_flags(p, [NUM_FRAMES], num_frames=None)
    _strategy_args(p)
    add_flags(p, [s for s in GENERATION.values() if s.name != "min_new_tokens"])
    add_flags(p, [VIEW["system"]])


def _strategy_args(p: argparse.ArgumentParser) -> None:
    """--strategy NAME and each strategy's own knobs as their own flags (all read from strategies.py)."""
    p.add_argument("--strategy", choices=NAMES, default="pllava",
                   help="how frames become visual tokens (default: %(default)s; the others are training-free "
                        "and meant for the image model: --lora-alpha 0)")
    p.add_argument("--pooling", default=None, help="pllava: pooling shape T,h,w (default: the checkpoint's, e.g. 16,12,12)")
    for cls in STRATEGIES.values():
        for knob, (lo, hi, what) in cls.KNOBS.items():
            default = cls.__dataclass_fields__[knob].default
            p.add_argument("--" + knob.replace("_", "-"), type=int, default=None, metavar="N",
                           help=f"{cls.name}: {what}, {lo}-{hi} (default {default})")


def strategy_from_args(args):
    """The strategy the flags name, or None for PLLaVA at the checkpoint's own pooling shape. A knob of
    another strategy than --strategy is an error, not silently ignored."""
    cls = STRATEGIES[args.strategy]
    given = {knob: getattr(args, knob) for c in STRATEGIES.values() for knob in c.KNOBS
             if getattr(args, knob, None) is not None}
    for knob in given:
        if knob not in cls.KNOBS:
            owner = next(c.name for c in STRATEGIES.values() if knob in c.KNOBS)
            raise PllavaError(f"--{knob.replace('_', '-')} is a setting of the {owner} strategy, not of {cls.name}.")
    pooling = parse_pooling(args.pooling)
    if cls is PllavaPooling:
        return None if pooling is None else PllavaPooling(pooling)
    if pooling is not None:
        raise PllavaError(f"--pooling is a setting of the pllava strategy, not of {cls.name}.")
    return make(cls.name, **given)


def frames_for(args, strategy, grid, context: int) -> int:
    """--frames when given (the strategy refuses it later if it does not fit), else the default or the
    most frames the strategy fits, said on stderr."""
    if args.frames is not None:
        return args.frames
    frames, note = strategy.fitted_frames(DEFAULT_FRAMES, grid, context)
    if note:
        print(f"Note: {note}", file=sys.stderr)
    return frames


def parse_pooling(text: str | None):
    if not text:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 3:
        raise PllavaError(f"--pooling takes three numbers like 16,12,12; got {text!r}")
    try:
        return tuple(int(v) for v in parts)
    except ValueError:
        raise PllavaError(f"--pooling takes three whole numbers like 16,12,12; got {text!r}") from None


def _settings(args):
    from .config import GenerationSettings

    return GenerationSettings(**from_args(args, GENERATION.values()))


def _tab(args):
    """The model loaded and a tab (studio/tab.py) holding the video, with the flags as its options: the
    CLI's chat is one tab's commands, as the page's and the API's are."""
    from .chat.engine import Engine
    from .chat.prompt import DEFAULT_SYSTEM
    from .studio import tab as tabs
    from .studio.options import Options

    engine = Engine.load(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {engine.loaded.describe()}", file=sys.stderr)
    for note in engine.loaded.notes:
        print(f"Note: {note}", file=sys.stderr)
    args.visual = engine.strategy(strategy_from_args(args))
    frames = frames_for(args, args.visual, engine.spec.frame_grid, engine.loaded.context_length)
    options = Options(num_frames=frames, strategy=args.visual, lora_alpha=args.lora_alpha, generation=_settings(args),
                      system=DEFAULT_SYSTEM if args.system is None else args.system, start_s=args.start, end_s=args.end)
    tab = tabs.load_video(tabs.Tab(engine, options), args.video,
                          progress=lambda f, what: print(f"[{f:4.0%}] {what}", file=sys.stderr))
    vf = tab.video
    info = engine.describe_view(vf, args.visual)
    print(f"Video: {vf.clip.width}x{vf.clip.height}, {vf.clip.duration:.1f} s; {info['frames']} frames at "
          f"{', '.join(f'{t:.1f}' for t in info['timestamps'])} s -> {info['strategy_text']} = "
          f"{info['visual_tokens']} visual tokens ({info['context_share']:.0%} of the context)", file=sys.stderr)
    if "note" in info:
        print(f"Note: {info['note']}", file=sys.stderr)
    return engine, tab


def _answer(session, question, args, stream=None) -> None:
    """Print a stream of answer pieces (`ask --scope whole` streams from a session of its own)."""
    stream = stream or session.ask(question, strategy=args.visual, lora_alpha=args.lora_alpha,
                                   settings=_settings(args))
    if session.notice:
        print(f"Note: {session.notice}", file=sys.stderr)
    try:
        for piece in stream:
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        stream.close()
        print(" [stopped]", end="")
    print()


def _ask(tab, question: str) -> None:
    """Ask the tab (studio/tab.py's answer command) and print the answer as it grows; Ctrl-C stops it."""
    from .studio import tab as tabs

    shown, noted = "", False
    answer = tabs.answer(tab, question)
    try:
        for text in answer:
            if not noted and tab.session.notice:  # the engine's note on this prompt, before its text
                print(f"Note: {tab.session.notice}", file=sys.stderr)
            noted = True
            print(text[len(shown):], end="", flush=True)
            shown = text
    except KeyboardInterrupt:
        answer.close()
        print(" [stopped]", end="")
    print()


def cmd_ask(args) -> int:
    if args.scope == "whole":
        from .chapters.cli import cmd_ask_whole

        return cmd_ask_whole(args, settings=_settings(args), strategy=strategy_from_args(args), answer=_answer,
                             frames_for=frames_for)
    engine, tab = _tab(args)
    try:
        _ask(tab, args.question)
    finally:
        engine.scheduler.wait_idle()
    return 0


def cmd_chat(args) -> int:
    engine, tab = _tab(args)
    try:
        return _chat_loop(tab, args)
    finally:
        engine.scheduler.wait_idle()


def _chat_loop(tab, args) -> int:
    from .studio import tab as tabs

    print("Ask about the video. Commands: /clear (forget the chat), /quit. Ctrl-C stops an answer.", file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if question in ("/quit", "/exit"):
            return 0
        if question == "/clear":
            tabs.clear(tab)
            continue
        if not question:
            continue
        print("pllava> ", end="", flush=True)
        try:
            _ask(tab, question)
        except PllavaError as e:
            print(f"\nError: {e}", file=sys.stderr)


def cmd_make_tiny(args) -> int:
    from .network.tiny import make_tiny

    path = make_tiny(args.directory, layout=args.layout, chat_format=args.chat_format)
    print(f"Wrote a tiny random {args.layout} checkpoint to {path} (its answers are random text).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pllava_demo", description="Talk with a video through PLLaVA.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ask", help="ask one question about a video and stream the answer")
    p.add_argument("video")
    p.add_argument("question")
    _model_args(p)
    _gen_args(p)
    _range_args(p)
    chapters_cli.add_scope_args(p)
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("chat", help="chat about a video in the terminal (the video is encoded once)")
    p.add_argument("video")
    _model_args(p)
    _gen_args(p)
    _range_args(p)
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("make-tiny", help="write a tiny random checkpoint for offline tests and demos")
    p.add_argument("directory")
    p.add_argument("--layout", choices=["official", "llava-hf"], default="official")
    p.add_argument("--chat-format", choices=["vicuna", "chatml"], default="vicuna")
    p.set_defaults(func=cmd_make_tiny)
    add_caption_parser(sub)
    chapters_cli.add_parser(sub, _model_args)
    from .openai_api.serve import add_parser as add_serve_parser

    add_serve_parser(sub)
    from .eval.cli import add_parser as add_eval_parser  # here, not at the top: eval's parser reads this module

    add_eval_parser(sub)
    return parser


# -- caption --------------------------------------------------------------------------------------
def add_caption_parser(sub) -> None:
    p = sub.add_parser("caption", help="caption every video of a folder or list into a JSONL file (resumable)")
    p.add_argument("input", help="a folder (searched recursively) or a list file: .txt, .csv or .jsonl")
    p.add_argument("--out", default="captions.jsonl", help="JSONL output; videos already in it are skipped (default: %(default)s)")
    p.add_argument("--prompt", default=None, help="instruction for every video (default: the official recaption prompt)")
    p.add_argument("--batch-size", type=int, default=1, help="videos per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="decoding threads running ahead of the model; 0 = decode in the main loop (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="caption at most this many new videos")
    add_flags(p, [GENERATION["min_new_tokens"]])
    p.add_argument("--retry-errors", action="store_true", help="try again the videos recorded with an error")
    p.add_argument("--ray", action="store_true", help="run on a Ray cluster with Ray Data (pip install -r requirements-ray.txt)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--actors", type=int, default=None, help="with --ray: captioning actors (default: one per GPU, else 1)")
    p.add_argument("--parquet", default=None, help="also write all records of --out to this Parquet file at the end")
    chapters_cli.add_caption_flag(p)
    _model_args(p)
    _gen_args(p)
    p.set_defaults(func=cmd_caption)


def options_from_args(args):
    from .caption.captioner import CaptionOptions
    from .chat.prompt import RECAPTION_PROMPT, RECAPTION_SYSTEM

    visual = strategy_from_args(args)
    return CaptionOptions(prompt=args.prompt or RECAPTION_PROMPT,
                          system=RECAPTION_SYSTEM if args.system is None else args.system,
                          num_frames=args.frames, settings=_settings(args),
                          pooling_shape=visual.shape if isinstance(visual, PllavaPooling) else None,
                          strategy=None if visual is None or isinstance(visual, PllavaPooling) else visual)


def pending_jobs(args, writer) -> tuple[list, int]:
    """The jobs of args.input not yet in the output (at most --limit), and how many were skipped."""
    from .caption.records import discover

    jobs = discover(args.input)
    todo = [j for j in jobs if not writer.is_done(j.path)]
    skipped = len(jobs) - len(todo)
    if args.limit is not None:
        todo = todo[: max(0, args.limit)]
    return todo, skipped


def cmd_caption(args) -> int:
    from tqdm import tqdm

    from .caption.records import CaptionWriter, write_parquet

    options = options_from_args(args)
    with CaptionWriter(args.out, retry_errors=args.retry_errors) as writer:
        todo, skipped = pending_jobs(args, writer)
        print(f"{len(todo)} video(s) to caption, {skipped} already in {args.out}", file=sys.stderr)
        if args.chapters:
            interrupted = chapters_cli.caption_folder(args, todo, writer)
        elif args.ray:
            from .caption.on_ray import run_ray

            interrupted = False
            bar = tqdm(total=len(todo), unit="video", file=sys.stderr, dynamic_ncols=True)
            try:
                run_ray(args, options, todo, writer, on_record=lambda r: _tick(bar, r))
            except KeyboardInterrupt:
                interrupted = True
            finally:
                bar.close()
        else:
            interrupted = _run_local(args, options, todo, writer)
    if args.parquet:
        n = write_parquet(args.out, args.parquet)
        print(f"Wrote {n} record(s) to {args.parquet}", file=sys.stderr)
    if interrupted:
        print(f"Interrupted: every finished caption is in {args.out}; run the same command again to resume.",
              file=sys.stderr)
        return 130
    return 0


def _run_local(args, options, todo: list, writer) -> bool:
    from tqdm import tqdm

    from .caption.captioner import Captioner, run_captions
    from .network.checkpoint import load_pllava

    if not todo:
        return False
    loaded = load_pllava(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {loaded.describe()}", file=sys.stderr)
    captioner = Captioner(loaded, options)
    if captioner.frames_note:
        print(f"Note: {captioner.frames_note}", file=sys.stderr)
    bar = tqdm(total=len(todo), unit="video", file=sys.stderr, dynamic_ncols=True)
    try:
        run_captions(captioner, todo, writer.write, batch_size=args.batch_size, workers=args.workers,
                     on_record=lambda r: _tick(bar, r))
    except KeyboardInterrupt:
        return True
    finally:
        bar.close()
    return False


def _tick(bar, record: dict) -> None:
    if "error" in record:
        bar.write(f"skipped {record['path']}: {record['error']}", file=sys.stderr)
    bar.update(1)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(max(1, args.threads))
    try:
        return args.func(args)
    except PllavaError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
