"""The command line doors of chapters: `python -m pllava_demo chapters VIDEO [--out F.vtt|.srt|.json]`
and the `--scope whole` / `--top-k` flags of `ask` (pllava_demo/cli.py registers both). Reads argv
only through the parsed args; chapters go to stdout, progress to stderr."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from .records import Chapters
from .settings import ChapterSettings

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pllava_demo" / "chapters"


def _chapter_args(p: argparse.ArgumentParser) -> None:
    d = ChapterSettings()
    p.add_argument("--subtitles", default=None, metavar="FILE", help="a sidecar .srt or .vtt beside the video")
    p.add_argument("--step", type=float, default=d.step_s, metavar="SECONDS",
                   help="one frame every this many seconds feeds the scene scores (default: %(default)s)")
    p.add_argument("--min-chapter", type=float, default=d.min_chapter_s, metavar="SECONDS",
                   help="shortest chapter (default: %(default)s)")
    p.add_argument("--max-chapter", type=float, default=d.max_chapter_s, metavar="SECONDS",
                   help="longer scenes are cut into equal parts (default: %(default)s)")
    p.add_argument("--max-chapters", type=int, default=d.max_chapters, help="at most this many (default: %(default)s)")
    p.add_argument("--caption-frames", type=int, default=d.caption_frames,
                   help="frames per chapter caption (default: %(default)s)")
    p.add_argument("--caption-tokens", type=int, default=d.caption_tokens,
                   help="longest chapter caption in tokens (default: %(default)s)")
    p.add_argument("--caption-min-tokens", type=int, default=d.caption_min_tokens, help=argparse.SUPPRESS)
    p.add_argument("--chapter-batch", type=int, default=d.batch_size,
                   help="chapters captioned together (default: %(default)s)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                   help="chapters are kept here by file content and settings; '' keeps none (default: %(default)s)")


def settings_from_args(args) -> ChapterSettings:
    return ChapterSettings(step_s=args.step, min_chapter_s=args.min_chapter, max_chapter_s=args.max_chapter,
                           max_chapters=args.max_chapters, caption_frames=args.caption_frames,
                           caption_tokens=args.caption_tokens, caption_min_tokens=args.caption_min_tokens,
                           batch_size=args.chapter_batch)


def add_parser(sub, model_args) -> None:
    p = sub.add_parser("chapters", help="split a long video into captioned chapters (print, or write .vtt/.srt/.json)")
    p.add_argument("video")
    p.add_argument("--out", default=None, help="write the chapters to this .vtt, .srt or .json file")
    _chapter_args(p)
    model_args(p)
    p.set_defaults(func=cmd_chapters)


def add_scope_args(p: argparse.ArgumentParser) -> None:
    """ask's flags for answering from the chapters a question is about."""
    p.add_argument("--scope", choices=["focus", "whole"], default="focus",
                   help="focus: frames of the whole video or --start/--end; whole: retrieve the chapters the "
                        "question is about and answer from their frames (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=3, help="with --scope whole: chapters retrieved (default: %(default)s)")
    _chapter_args(p)


def _engine(args):
    from ..chat.engine import Engine

    engine = Engine.load(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {engine.loaded.describe()}", file=sys.stderr)
    return engine


def _maker(engine, args):
    from .cache import ChapterCache
    from .maker import maker_for

    return maker_for(engine, ChapterCache(args.cache_dir or None))


def _progress(fraction: float, what: str) -> None:
    print(f"[{fraction:4.0%}] {what}", file=sys.stderr)


def print_chapters(ch: Chapters, out=None) -> None:
    out = out or sys.stdout  # looked up at the call: stdout may have been replaced since import
    for c in ch.chapters:
        print(f"{c.index + 1:3d}  {c.label:>17}  {c.title}", file=out)
        for line in c.lines:
            print(f"{'':5}{'':>17}  [{line.text}]", file=out)


def make_chapters(engine, args) -> tuple[Chapters, bool]:
    """The chapters (made or cached) and whether Ctrl-C stopped the run early."""
    settings = settings_from_args(args)
    maker = _maker(engine, args)
    stop = threading.Event()
    made: list[Chapters] = []
    try:
        ch = maker.chapters(args.video, settings, sidecar=args.subtitles, stop=stop, on_update=made.append,
                            progress=_progress)
        return ch, False
    except KeyboardInterrupt:
        stop.set()
        return (made[-1] if made else Chapters("", 0.0, (), "stopped")), True


def cmd_chapters(args) -> int:
    from .export import render, write

    settings_from_args(args)  # bad settings and a bad --out are refused before the model loads
    if args.out:
        render(Chapters("", 0.0, (), "check"), Path(args.out).suffix)
    engine = _engine(args)
    ch, stopped = make_chapters(engine, args)
    print(f"{len(ch.chapters)} chapters ({ch.method}), {ch.captioned} captioned", file=sys.stderr)
    print_chapters(ch)
    if args.out:
        write(ch, args.out)
        print(f"Wrote {args.out}", file=sys.stderr)
    if stopped:
        print("Stopped: the chapters made so far are kept; run the same command again to finish.", file=sys.stderr)
        return 130
    return 0


def cmd_ask_whole(args, *, settings, strategy, answer, frames_for) -> int:
    """`ask --scope whole`: chapters (cached), retrieval, then the answer streamed from their frames.
    settings / strategy: the generation settings and visual strategy the ask flags name; answer: the
    ask command's printer (answer(session, question, args, stream)); frames_for: its frame budget rule
    (frames_for(args, strategy, grid, context))."""
    from ..chat.prompt import DEFAULT_SYSTEM
    from .whole import ask_whole, check_top_k

    check_top_k(args.top_k)  # refused before the model loads and the chapters are made
    settings_from_args(args)
    engine = _engine(args)
    ch, stopped = make_chapters(engine, args)
    if stopped:
        print("Stopped while making chapters.", file=sys.stderr)
        return 130
    session = engine.new_session(DEFAULT_SYSTEM if args.system is None else args.system)
    args.visual = engine.strategy(strategy)
    frames = frames_for(args, args.visual, engine.spec.frame_grid, engine.loaded.context_length)
    stream, plan = ask_whole(session, args.video, ch, args.question, top_k=args.top_k, num_frames=frames,
                             progress=_progress, strategy=args.visual, lora_alpha=args.lora_alpha, settings=settings)
    print(plan.describe(), file=sys.stderr)
    for line in plan.lines:
        print(f"  subtitle [{line.start:.1f} s] {line.text}", file=sys.stderr)
    try:
        answer(session, args.question, args, stream)
    finally:
        engine.scheduler.wait_idle()  # as ask does: no torch thread may still run at exit
    return 0


# -- caption --chapters ---------------------------------------------------------------------------
def add_caption_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chapters", action="store_true",
                   help="write each video's chapters (times + a caption each) instead of one caption per video")


def caption_folder(args, todo: list, writer) -> bool:
    """`caption --chapters`: one JSON line per video with its chapters (resumable like the captions;
    a bad video gets an error record). Returns True if Ctrl-C stopped the run."""
    from ..chapters.maker import ChapterMaker
    from ..network.checkpoint import load_pllava

    if getattr(args, "ray", False):
        from ..errors import InputError

        raise InputError("caption --chapters runs in this process; it cannot be combined with --ray yet.")
    if not todo:
        return False
    loaded = load_pllava(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {loaded.describe()}", file=sys.stderr)
    from .cache import ChapterCache

    maker = ChapterMaker(loaded, cache=ChapterCache(getattr(args, "cache_dir", None) or None))
    settings = ChapterSettings(caption_frames=args.frames or ChapterSettings.caption_frames,
                               caption_tokens=min(args.max_new_tokens, 512),
                               caption_min_tokens=args.min_new_tokens, batch_size=max(1, args.batch_size))
    stop = threading.Event()
    for i, job in enumerate(todo, 1):
        try:
            ch = maker.chapters(job.path, settings, stop=stop)
            record = {"path": job.path, "chapters": [c.as_dict() for c in ch.chapters], "method": ch.method,
                      "duration": round(ch.duration, 3)}
        except KeyboardInterrupt:
            stop.set()
            return True
        except Exception as e:  # noqa: BLE001 - one bad file of a folder must not stop the run
            record = {"path": job.path, "error": str(e) or type(e).__name__, "error_type": type(e).__name__}
        record.update(model=loaded.name, settings=settings.as_dict())
        writer.write(record)
        print(f"[{i}/{len(todo)}] {job.path}: " + (f"{len(record['chapters'])} chapters" if "chapters" in record
                                                    else f"skipped ({record['error']})"), file=sys.stderr)
    return False
