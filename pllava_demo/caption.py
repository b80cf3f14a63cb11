"""Dense captioning at scale: caption every video of a folder or list into one JSON line each.

Which videos and what is already done live in caption_io.py (`discover`, `CaptionWriter`: one
line per video, flush + fsync each, resumable). Here:
- `Captioner.prepare` decodes + preprocesses one video (thread-safe, no model), and
  `Captioner.caption_batch` runs several videos through CLIP and the LLM in one padded batch;
  `run_captions` keeps worker threads decoding ahead while the model generates.

Batching: each prompt is prefilled on its own cache (no padding), then the scheduler decodes all
rows together, each at its own position with a mask over its own cache length (scheduler.py, the
same loop the chat engine uses). Greedy captions are therefore the same batched or one by one (a
test pins it). Sampling gives each row its own generator seeded with `seed`, so it too does not
depend on batching.

This module knows no Ray (caption_ray.py reuses `Captioner` on Ray actors) and reads argv only in
`cmd_caption`, the entry point that cli.py registers through `add_caption_parser`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import torch

from .caption_io import CaptionJob, CaptionWriter, discover, write_parquet
from .config import GenerationSettings, PoolingShape, check_pooling_shape, clean_text
from .errors import InputError, PllavaError
from .prompt import RECAPTION_PROMPT, RECAPTION_SYSTEM, TextStream, chat_format_for, fit_prompt, stop_token_ids

log = logging.getLogger(__name__)


# -- doing it -------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """One decoded, preprocessed video (or the error that stopped it), ready for the model."""

    job: CaptionJob
    pixels: torch.Tensor | None = None  # (T, 3, 336, 336) float32
    timestamps: tuple[float, ...] = ()
    duration: float = 0.0
    decode_seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class CaptionOptions:
    prompt: str = RECAPTION_PROMPT
    system: str = RECAPTION_SYSTEM
    num_frames: int = 16
    pooling_shape: PoolingShape | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)

    def __post_init__(self):
        for name in ("prompt", "system"):  # argv may carry lone surrogates (undecodable bytes)
            object.__setattr__(self, name, clean_text(getattr(self, name)))
        if not self.prompt.strip():
            raise InputError("The caption prompt is empty.")
        if self.num_frames < 1:
            raise InputError(f"The number of frames must be at least 1, got {self.num_frames}.")


def prepare_video(job: CaptionJob, num_frames: int) -> Prepared:
    """Decode + CLIP-preprocess one video; needs no model, so it runs in threads or on Ray CPU workers.
    Never raises for a bad video: the error is returned for the record."""
    from .preprocess import clip_preprocess, official_resize
    from .video import read_video

    t0 = time.perf_counter()
    try:
        # Same pixels as the chat engine: the official resize of each frame as it is decoded.
        clip = read_video(job.path, num_frames, resize=official_resize)
        pixels = clip_preprocess(clip.frames)  # (T, 3, 336, 336)
    except Exception as e:  # noqa: BLE001 - one bad file of a million must not stop the run
        return Prepared(job, error=str(e) or type(e).__name__, error_type=type(e).__name__,
                        decode_seconds=time.perf_counter() - t0)
    return Prepared(job, pixels, tuple(round(float(s), 3) for s in clip.timestamps), float(clip.duration),
                    time.perf_counter() - t0)


class Captioner:
    """A loaded model + the run's options. `prepare` may run in many threads; `caption_batch` in one."""

    def __init__(self, loaded, options: CaptionOptions = CaptionOptions()):
        self.loaded, self.model, self.tokenizer = loaded, loaded.model, loaded.tokenizer
        self.options = options
        self.pooling_shape = check_pooling_shape(options.pooling_shape or loaded.spec.pooling_shape, loaded.spec.frame_grid)
        self.format = chat_format_for(self.tokenizer)
        self.stop_ids = stop_token_ids(self.tokenizer, self.format)
        t, h, w = self.pooling_shape
        self.n_video_tokens = t * h * w  # pooling repeats frames when T < T', so N never depends on the video

    def settings_record(self) -> dict:
        o = self.options
        return {
            "prompt": "official-recaption" if o.prompt == RECAPTION_PROMPT else o.prompt,
            "system": "official-recaption" if o.system == RECAPTION_SYSTEM else o.system,
            "frames": o.num_frames, "pooling_shape": list(self.pooling_shape), "lora_alpha": self.loaded.lora_alpha,
            **asdict(o.settings),
        }

    def prepare(self, job: CaptionJob) -> Prepared:
        return prepare_video(job, self.options.num_frames)

    def _prompt_ids(self, prompt: str) -> tuple[list[int], int]:
        """Token ids of the rendered prompt (one <image>) and the answer budget that fits the context."""
        fitted = fit_prompt(self.tokenizer, self.format, self.options.system, (), prompt,
                            n_video_tokens=self.n_video_tokens, context=self.loaded.context_length,
                            max_new_tokens=self.options.settings.max_new_tokens)
        return list(fitted.ids), fitted.max_new_tokens

    @torch.inference_mode()
    def caption_batch(self, items: list[Prepared]) -> list[dict]:
        """Caption decoded videos in one padded batch; returns one record per item, in order. If the
        batch fails (e.g. out of memory), its videos are retried one by one so only a culprit fails."""
        records: list[dict | None] = [None] * len(items)
        ok = []
        for i, item in enumerate(items):
            if item.error is not None:
                records[i] = self._record(item, error=(item.error, item.error_type), seconds=item.decode_seconds)
            else:
                ok.append(i)
        if not ok:
            return records
        t0 = time.perf_counter()
        failure = None
        try:
            texts = self._generate([items[i] for i in ok])
        except (RuntimeError, ValueError, PllavaError) as e:
            failure = (str(e), type(e).__name__)
        if failure is not None:
            # Out of the except block, so the traceback (and the failed batch's tensors it holds) is gone
            # before the memory is given back and anything is retried.
            from .engine import Engine

            Engine.release_memory()
            if len(ok) == 1:
                item = items[ok[0]]
                records[ok[0]] = self._record(item, error=failure, seconds=item.decode_seconds + time.perf_counter() - t0)
                return records
            log.warning("a batch of %d failed (%s): retrying its videos one by one", len(ok), failure[0])
            for i in ok:
                records[i] = self.caption_batch([items[i]])[0]
            return records
        share = (time.perf_counter() - t0) / len(ok)  # the model's time, split evenly over the batch
        for i, text in zip(ok, texts):
            records[i] = self._record(items[i], caption=text, seconds=items[i].decode_seconds + share)
        return records

    def _record(self, item: Prepared, *, caption: str | None = None, error=None, seconds: float) -> dict:
        record = {"path": item.job.path}
        if error is not None:
            record["error"], record["error_type"] = error
        else:
            record["caption"] = caption
        record["model"] = self.loaded.name
        record["settings"] = self.settings_record()
        if item.job.prompt is not None:
            record["settings"]["prompt"] = item.job.prompt
        record["timestamps"] = list(item.timestamps)
        record["duration"] = round(item.duration, 3)
        record["seconds"] = round(seconds, 3)
        return record

    def _generate(self, items: list[Prepared], on_logits=None) -> list[str]:
        """Captions of decoded videos: CLIP over every frame of the batch at once, then each prompt is
        prefilled on its own cache and the answers are decoded together by the scheduler (the chat
        engine's one decode loop). on_logits(step, logits (B, V)) gets every step's raw logits of the
        rows still writing at that step (tests compare them across batchings)."""
        from .generate import Row, Sampler
        from .kvcache import new_kv_cache
        from .scheduler import Job, Scheduler

        model, spec = self.model, self.loaded.spec
        device = model.device
        lengths = [it.pixels.shape[0] for it in items]
        feats = model.encode_frames(torch.cat([it.pixels for it in items]))  # (sum T, H*W, D)
        vocab = model.language_model.get_output_embeddings().weight.shape[0]
        sampler = Sampler(self.stop_ids, device)
        sched = Scheduler(model, sampler, max_rows=len(items), threaded=False)
        seen_logits: list[dict[int, torch.Tensor]] = [{} for _ in items]
        jobs = []
        for b, (item, f) in enumerate(zip(items, feats.split(lengths))):
            row_ids, budget = self._prompt_ids(item.job.prompt or self.options.prompt)
            expanded, _ = model.expand_image_token(torch.tensor([row_ids]), self.n_video_tokens)  # (1, S)
            embeds = model.embed(expanded.to(device), model.pool(f, self.pooling_shape))  # (1, S, D)
            # repetition penalty: the prompt's text ids count as seen, as in the chat engine
            seen = torch.tensor([t for t in row_ids if t != spec.image_token_index], dtype=torch.long)
            hook = (lambda i, x, b=b: seen_logits[b].__setitem__(i, x.clone())) if on_logits else None
            jobs.append(sched.submit(Job(embeds, new_kv_cache(), 0, Row.new(self.options.settings, vocab, device,
                                                                               seen, budget), on_logits=hook)))
        del feats
        sched.run()
        for job in jobs:
            if job.error is not None:  # caption_batch retries the videos one by one
                raise job.error
        if on_logits is not None:
            for i in range(max(len(s) for s in seen_logits)):
                on_logits(i, torch.stack([s[i] for s in seen_logits if i in s]))
        texts = []
        for job in jobs:
            stream = TextStream(self.tokenizer, self.format.stop_strings)
            for token_id in job.tokens():
                stream.push(token_id)
                if stream.stopped:
                    break
            stream.finish()
            texts.append(stream.text)
        return texts


def run_captions(captioner: Captioner, jobs: Iterable[CaptionJob], write: Callable[[dict], None], *,
                 batch_size: int = 1, workers: int = 2, on_record: Callable[[dict], None] | None = None) -> int:
    """Caption jobs in order, writing each record as its batch finishes. workers > 0 decodes ahead in
    that many threads (at most a few batches ahead, so memory stays bounded); workers = 0 is the plain
    sequential loop (decode, then caption). Returns the number of records written."""
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}.")
    written = 0

    def flush(batch: list[Prepared]) -> None:
        nonlocal written
        for record in captioner.caption_batch(batch):
            write(record)
            written += 1
            if on_record:
                on_record(record)

    jobs = iter(jobs)
    if workers <= 0:
        batch = []
        for job in jobs:
            batch.append(captioner.prepare(job))
            if len(batch) == batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        return written

    ahead = workers + 2 * batch_size  # decoded videos waiting at most: bounded memory (~22 MB each at T=16)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    pending: deque = deque()
    try:
        for job in _take(jobs, ahead):
            pending.append(pool.submit(captioner.prepare, job))
        while pending:
            batch = []
            while pending and len(batch) < batch_size:
                batch.append(pending.popleft().result())
                for job in _take(jobs, 1):  # keep the decoders busy while the model works on this batch
                    pending.append(pool.submit(captioner.prepare, job))
            flush(batch)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return written


def _take(it: Iterator, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


# -- command line ---------------------------------------------------------------------------------
def add_caption_parser(sub, model_args: Callable, gen_args: Callable) -> None:
    p = sub.add_parser("caption", help="caption every video of a folder or list into a JSONL file (resumable)")
    p.add_argument("input", help="a folder (searched recursively) or a list file: .txt, .csv or .jsonl")
    p.add_argument("--out", default="captions.jsonl", help="JSONL output; videos already in it are skipped (default: %(default)s)")
    p.add_argument("--prompt", default=None, help="instruction for every video (default: the official recaption prompt)")
    p.add_argument("--batch-size", type=int, default=1, help="videos per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="decoding threads running ahead of the model; 0 = decode in the main loop (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="caption at most this many new videos")
    p.add_argument("--min-new-tokens", type=int, default=0, help="forbid stopping before this many tokens")
    p.add_argument("--retry-errors", action="store_true", help="try again the videos recorded with an error")
    p.add_argument("--ray", action="store_true", help="run on a Ray cluster with Ray Data (pip install -r requirements-ray.txt)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--actors", type=int, default=None, help="with --ray: captioning actors (default: one per GPU, else 1)")
    p.add_argument("--parquet", default=None, help="also write all records of --out to this Parquet file at the end")
    model_args(p)
    gen_args(p)
    p.set_defaults(func=cmd_caption)


def options_from_args(args) -> CaptionOptions:
    from .cli import parse_pooling

    settings = GenerationSettings(do_sample=args.sample, temperature=args.temperature, top_p=args.top_p,
                                  max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
                                  min_new_tokens=args.min_new_tokens, seed=args.seed)
    return CaptionOptions(prompt=args.prompt or RECAPTION_PROMPT,
                          system=RECAPTION_SYSTEM if args.system is None else args.system,
                          num_frames=args.frames, pooling_shape=parse_pooling(args.pooling), settings=settings)


def pending_jobs(args, writer: CaptionWriter) -> tuple[list[CaptionJob], int]:
    """The jobs of args.input not yet in the output (at most --limit), and how many were skipped."""
    jobs = discover(args.input)
    todo = [j for j in jobs if not writer.is_done(j.path)]
    skipped = len(jobs) - len(todo)
    if args.limit is not None:
        todo = todo[: max(0, args.limit)]
    return todo, skipped


def cmd_caption(args) -> int:
    from tqdm import tqdm

    options = options_from_args(args)
    with CaptionWriter(args.out, retry_errors=args.retry_errors) as writer:
        todo, skipped = pending_jobs(args, writer)
        print(f"{len(todo)} video(s) to caption, {skipped} already in {args.out}", file=sys.stderr)
        if args.ray:
            from .caption_ray import run_ray

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


def _run_local(args, options: CaptionOptions, todo: list[CaptionJob], writer: CaptionWriter) -> bool:
    from tqdm import tqdm

    from .checkpoint import load_pllava

    if not todo:
        return False
    loaded = load_pllava(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         cpu_dtype=args.cpu_dtype)
    print(f"Loaded {loaded.describe()}", file=sys.stderr)
    captioner = Captioner(loaded, options)
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
