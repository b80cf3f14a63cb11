"""Command line: `python -m pllava_demo {ask, chat, make-tiny, caption}`.

The only place (with app.py) that reads argv and the environment. Answers stream to stdout;
progress and notices go to stderr so stdout can be piped.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import PllavaError


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="ermu2001/pllava-7b", help="Hub repo id or local folder (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quantization", default="auto", choices=["auto", "none", "4bit"],
                   help="auto = 4-bit nf4 on CUDA, none on CPU")
    p.add_argument("--lora-alpha", type=float, default=None, help="LoRA strength (official: 4; 0 = image LLaVA)")
    p.add_argument("--cpu-dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="weights on CPU: auto = float32 where it fits in RAM, else bfloat16 (faster prompts on "
                        "CPUs with native bf16: AMX, AVX512-BF16)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; on a busy machine fewer is faster)")


def _range_args(p: argparse.ArgumentParser) -> None:
    """Focus on a part of one video (ask and chat; captioning samples whole videos)."""
    p.add_argument("--start", type=float, default=None, metavar="SECONDS",
                   help="sample only from this time on (default: the video's start)")
    p.add_argument("--end", type=float, default=None, metavar="SECONDS",
                   help="sample only up to this time (default: the video's end)")


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=16, help="frames sampled from the video (default 16)")
    p.add_argument("--pooling", default=None, help="pooling shape T,h,w (default: the checkpoint's, e.g. 16,12,12)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--system", default=None, help="system prompt (default: the official demo's)")


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

    return GenerationSettings(do_sample=args.sample, temperature=args.temperature, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                              seed=args.seed)


def _session(args):
    from .engine import Engine
    from .prompt import DEFAULT_SYSTEM

    engine = Engine.load(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {engine.loaded.describe()}", file=sys.stderr)
    for note in engine.loaded.notes:
        print(f"Note: {note}", file=sys.stderr)
    session = engine.new_session(DEFAULT_SYSTEM if args.system is None else args.system)
    vf = session.set_video(args.video, args.frames, start_s=args.start, end_s=args.end,
                           progress=lambda f, what: print(f"[{f:4.0%}] {what}", file=sys.stderr))
    info = engine.describe_view(vf, parse_pooling(args.pooling))
    print(f"Video: {vf.clip.width}x{vf.clip.height}, {vf.clip.duration:.1f} s; {info['frames']} frames at "
          f"{', '.join(f'{t:.1f}' for t in info['timestamps'])} s -> {info['visual_tokens']} visual tokens "
          f"({info['context_share']:.0%} of the context)", file=sys.stderr)
    if "note" in info:
        print(f"Note: {info['note']}", file=sys.stderr)
    return engine, session


def _answer(session, question, args) -> None:
    stream = session.ask(question, pooling_shape=parse_pooling(args.pooling), lora_alpha=args.lora_alpha,
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


def cmd_ask(args) -> int:
    _, session = _session(args)
    _answer(session, args.question, args)
    return 0


def cmd_chat(args) -> int:
    _, session = _session(args)
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
            session.clear()
            continue
        if not question:
            continue
        print("pllava> ", end="", flush=True)
        try:
            _answer(session, question, args)
        except PllavaError as e:
            print(f"\nError: {e}", file=sys.stderr)


def cmd_make_tiny(args) -> int:
    from .tiny import make_tiny

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
    try:
        from .caption import add_caption_parser
    except ImportError:
        pass
    else:
        add_caption_parser(sub, _model_args, _gen_args)
    return parser


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
