"""Dense captioning at scale: caption every video of a folder or list into one JSON line each.

Which videos and what is already done live in records.py (`discover`, `CaptionWriter`: one
line per video, flush + fsync each, resumable). Here:
- `Captioner.prepare` decodes + preprocesses one video (thread-safe, no model), and
  `Captioner.caption_batch` runs several videos through CLIP and the LLM together (see Batching);
  `run_captions` keeps worker threads decoding ahead while the model generates.

Batching: each prompt is prefilled on its own cache (no padding), then the scheduler decodes all
rows together, each at its own position with a mask over its own cache length (scheduler.py, the
same loop the chat engine uses). Greedy captions are therefore the same batched or one by one (a
test pins it). Sampling gives each row its own generator seeded with `seed`, so it too does not
depend on batching.

This module knows no Ray (on_ray.py reuses `Captioner` on Ray actors) and no command line (the
`caption` command lives in cli.py with the others).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import torch

from ..frames import strategies
from .records import CaptionJob
from ..config import DEFAULT_FRAMES, GenerationSettings, PoolingShape, check_pooling_shape, clean_text
from ..errors import InputError, PllavaError
from ..chat.prompt import (MIN_ANSWER_TOKENS, RECAPTION_PROMPT, RECAPTION_SYSTEM, TextStream, chat_format_for,
                           encode_prompt, fit_prompt, stop_token_ids)
from ..frames.preprocess import CLIP_PIXELS, PixelSpec
from ..settings import NUM_FRAMES

log = logging.getLogger(__name__)


# -- doing it -------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """One decoded, preprocessed video (or the error that stopped it), ready for the model."""

    job: CaptionJob
    pixels: torch.Tensor | None = None  # (T + extra, 3, 336, 336) float32: the frames, then the strategy's images
    timestamps: tuple[float, ...] = ()
    duration: float = 0.0
    decode_seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None
    extra: int = 0  # how many of the last pixel rows are the strategy's own images (a grid, a thumbnail)


@dataclass(frozen=True)
class CaptionOptions:
    prompt: str = RECAPTION_PROMPT
    system: str = RECAPTION_SYSTEM
    num_frames: int | None = None  # None: DEFAULT_FRAMES, or the most the strategy fits (Captioner says which)
    pooling_shape: PoolingShape | None = None  # PLLaVA pooling at this shape (None: the checkpoint's)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    strategy: strategies.Strategy | None = None  # another visual-token strategy than PLLaVA pooling

    def __post_init__(self):
        for name in ("prompt", "system"):  # argv may carry lone surrogates (undecodable bytes)
            object.__setattr__(self, name, clean_text(getattr(self, name)))
        if not self.prompt.strip():
            raise InputError("The caption prompt is empty.")
        if self.num_frames is not None:
            object.__setattr__(self, "num_frames", NUM_FRAMES.check(self.num_frames))


def prepare_video(job: CaptionJob, num_frames: int, pixels: PixelSpec = CLIP_PIXELS,
                  strategy: strategies.Strategy | None = None) -> Prepared:
    """Decode + CLIP-preprocess one video (with the checkpoint's pixel spec, and the strategy's own
    images, if it makes any); needs no model, so it runs in threads or on Ray CPU workers. Never raises
    for a bad video: the error is returned for the record."""
    from ..frames.video import read_video

    t0 = time.perf_counter()
    try:
        # Same pixels as the chat engine: the official resize of each frame as it is decoded.
        clip = read_video(job.path, num_frames, resize=pixels.resize)
        values = pixels.normalise(clip.frames)  # (T, 3, 336, 336)
        images = strategy.frame_images(clip.frames, pixels) if strategy is not None else None  # (K, 3, 336, 336)
        if images is not None:
            values = torch.cat([values, images])  # (T + K, 3, 336, 336)
    except Exception as e:  # noqa: BLE001 - one bad file of a million must not stop the run
        return Prepared(job, error=str(e) or type(e).__name__, error_type=type(e).__name__,
                        decode_seconds=time.perf_counter() - t0)
    return Prepared(job, values, tuple(round(float(s), 3) for s in clip.timestamps), float(clip.duration),
                    time.perf_counter() - t0, extra=0 if images is None else images.shape[0])


class Captioner:
    """A loaded model + the run's options. `prepare` may run in many threads; `caption_batch` in one."""

    def __init__(self, loaded, options: CaptionOptions = CaptionOptions()):
        self.loaded, self.model, self.tokenizer = loaded, loaded.model, loaded.tokenizer
        grid = loaded.spec.frame_grid
        self.strategy = strategies.parse(options.strategy or options.pooling_shape, loaded.spec.pooling_shape)
        if isinstance(self.strategy, strategies.PllavaPooling):
            check_pooling_shape(self.strategy.shape, grid)
        self.format = chat_format_for(self.tokenizer, loaded.family)
        self.stop_ids = stop_token_ids(self.tokenizer, self.format)
        self.frames_note = None  # set when the frame count was fitted to the strategy
        if options.num_frames is None:
            words = len(encode_prompt(self.tokenizer, self.format.parts(options.system, (), options.prompt)))
            frames, self.frames_note = self.strategy.fitted_frames(DEFAULT_FRAMES, grid, loaded.context_length,
                                                                   words + MIN_ANSWER_TOKENS)
            options = replace(options, num_frames=frames)
        self.options = options
        self.strategy.check_fits(options.num_frames, grid, loaded.context_length)
        self.n_video_tokens = self.strategy.n_tokens(options.num_frames, grid)

    def settings_record(self) -> dict:
        o = self.options
        return {
            "prompt": "official-recaption" if o.prompt == RECAPTION_PROMPT else o.prompt,
            "system": "official-recaption" if o.system == RECAPTION_SYSTEM else o.system,
            "frames": o.num_frames, "strategy": self.strategy.as_dict(),
            "pooling_shape": list(self.strategy.shape) if isinstance(self.strategy, strategies.PllavaPooling) else None,
            "lora_alpha": self.loaded.lora_alpha,
            "dtype": str(self.loaded.dtype).removeprefix("torch."),  # the weights' (--cpu-dtype on CPU)
            **asdict(o.settings),
        }

    def prepare(self, job: CaptionJob) -> Prepared:
        return prepare_video(job, self.options.num_frames, self.loaded.pixels,
                             self.strategy if self.strategy.changes_frames else None)

    def _prompt_ids(self, prompt: str) -> tuple[list[int], int]:
        """Token ids of the rendered prompt (one <image>) and the answer budget that fits the context."""
        fitted = fit_prompt(self.tokenizer, self.format, self.options.system, (), prompt,
                            n_video_tokens=self.n_video_tokens, context=self.loaded.context_length,
                            max_new_tokens=self.options.settings.max_new_tokens)
        return list(fitted.ids), fitted.max_new_tokens

    @torch.inference_mode()
    def caption_batch(self, items: list[Prepared]) -> list[dict]:
        """Caption decoded videos together (one decode loop); returns one record per item, in order. If the
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
            from ..chat.engine import Engine

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
        from ..chat.generate import Row, Sampler
        from ..chat.kvcache import new_kv_cache
        from ..chat.scheduler import Job, Scheduler

        model, spec = self.model, self.loaded.spec
        device = model.device
        lengths = [it.pixels.shape[0] for it in items]
        # vision: every frame (and strategy image) of the batch through CLIP at once
        feats = model.encode_frames(torch.cat([it.pixels for it in items]))  # (sum T + K, H*W, D)
        vocab = model.language_model.get_output_embeddings().weight.shape[0]
        sampler = Sampler(self.stop_ids, device)
        sched = Scheduler(model, sampler, max_rows=len(items), threaded=False)
        seen_logits: list[dict[int, torch.Tensor]] = [{} for _ in items]
        jobs = []
        for b, (item, f) in enumerate(zip(items, feats.split(lengths))):
            row_ids, budget = self._prompt_ids(item.job.prompt or self.options.prompt)
            expanded, _ = model.expand_image_token(torch.tensor([row_ids]), self.n_video_tokens)  # (1, S)
            extra = f[len(f) - item.extra:] if item.extra else None  # the strategy's own images' features
            tokens = model.pool(f[: len(f) - item.extra], self.strategy, extra)  # (N, D)
            embeds = model.embed(expanded.to(device), tokens)  # (1, S, D)
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
