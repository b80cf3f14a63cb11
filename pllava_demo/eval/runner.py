"""The sweep: every question under every (LoRA alpha, strategy) setting, each clip decoded and CLIP-encoded
once for the whole sweep.

Per clip (one file + data type + bound; its questions are grouped under it): the frames are read by the
official rule (media.py) in worker threads running ahead, encoded once (`clips_encoded`), and kept as the
engine's VideoFeatures; each strategy's visual tokens come from `Engine.visual_tokens` (pooled once per
strategy, a strategy's own images through CLIP once); then every (question, setting) is a Job in the
engine's one decode loop (chat/scheduler.py), rows of different alphas decoded together in one batch.
Greedy, the protocol's token limit; the answer is cut from the decoded prompt + answer exactly as the
official script cuts it (protocols.py), and a multiple-choice row is scored by the official rule.

Knows the engine, the protocols and the rows; no argparse, printing or judge.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..config import GenerationSettings
from ..errors import InputError, PllavaError
from ..frames.strategies import Strategy
from .datasets import Item
from .matching import follows_instructions, official_match
from .media import EvalClip, load_clip
from .protocols import Protocol
from .results import RowWriter, digest, row_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    alpha: float | None
    strategy: Strategy

    def record(self, protocol: Protocol, num_frames: int, model: str) -> dict:
        return {"lora_alpha": self.alpha, "strategy": self.strategy.as_dict(), "frames": num_frames,
                "protocol": protocol.name, "model": model}


@dataclass
class _Prepared:
    items: list[Item]
    clip: EvalClip | None = None
    pixels: torch.Tensor | None = None  # (T, 3, 336, 336)
    error: str | None = None
    seconds: float = 0.0


def stop_at_keywords(tokenizer, ids: list[int], keywords: tuple[str, ...]) -> list[int]:
    """The ids up to the step at which the official KeywordsStoppingCriteria stops generation: the first
    one (from the second new token on) after which ALL keywords are in the decoded new text."""
    if not keywords:
        return ids
    for n in range(2, len(ids) + 1):
        text = tokenizer.decode(ids[:n], skip_special_tokens=True)
        if all(k in text for k in keywords):
            return ids[:n]
    return ids


class Sweep:
    def __init__(self, engine, protocol: Protocol, settings: list[Setting], *, num_frames: int = 16,
                 generation: GenerationSettings | None = None):
        if not settings:
            raise InputError("The sweep has no setting (give at least one --lora-alpha and --strategy).")
        self.engine, self.protocol, self.settings, self.num_frames = engine, protocol, settings, num_frames
        self.loaded = engine.loaded
        self.stats: Counter = Counter()
        grid = self.loaded.spec.frame_grid
        for s in settings:
            s.strategy.check_fits(num_frames, grid, self.loaded.context_length)
        # greedy at the protocol's limit; a benchmark may fix the answer length instead (min = max)
        self.gen = generation or GenerationSettings(max_new_tokens=protocol.max_new_tokens)
        self._records = {s: s.record(protocol, num_frames, self.loaded.name) for s in settings}

    def todo(self, items: Iterable[Item], writer: RowWriter, limit: int | None = None) -> list[tuple[Item, list[Setting]]]:
        """(item, settings without a row yet), in order; at most `limit` items."""
        out = []
        for item in items:
            missing = [s for s in self.settings if not writer.is_done(row_key(item, self._records[s]))]
            if missing:
                out.append((item, missing))
            if limit is not None and len(out) >= limit:
                break
        return out

    # -- decoding (threads) -----------------------------------------------------------------------
    def prepare(self, items: list[Item]) -> _Prepared:
        t0 = time.perf_counter()
        first = items[0]
        try:
            clip = load_clip(first.video, self.num_frames, data_type=first.data_type, bound=first.bound,
                             resize=self.loaded.pixels.resize)
            pixels = self.loaded.pixels.normalise(clip.frames)  # (T, 3, 336, 336)
        except Exception as e:  # noqa: BLE001 - one bad clip is a row error, never the end of the run
            return _Prepared(items, error=str(e) or type(e).__name__, seconds=time.perf_counter() - t0)
        return _Prepared(items, clip, pixels, seconds=time.perf_counter() - t0)

    # -- the model (one thread) -------------------------------------------------------------------
    def features(self, prep: _Prepared):
        """The clip's VideoFeatures: CLIP + projector once, kept in the engine's feature cache."""
        from ..chat.features import VideoFeatures
        from ..frames.video import Clip

        eng, clip = self.engine, prep.clip
        key = (clip.key, len(clip.indices), None, None)
        vf = eng.feature_cache.get(key)
        if vf is not None:
            return vf
        with eng.lock, torch.inference_mode():
            feats = eng.model.encode_frames(prep.pixels)  # (T, H*W, D)
        self.stats["clips_encoded"] += 1
        self.stats["frames_encoded"] += prep.pixels.shape[0]
        h, w = clip.frames.shape[1:3]
        # the engine's caches read the frames (a strategy's own images) and the key; the ordinals stand in
        # for timestamps, which nothing here shows
        as_clip = Clip(clip.frames, tuple(float(i) for i in clip.indices), clip.indices, 0.0, 0.0, w, h,
                       len(clip.indices), prep.items[0].video, clip.key)
        vf = VideoFeatures(clip=as_clip, features=feats, num_frames=len(clip.indices))
        eng.feature_cache.put(key, vf)
        return vf

    def run_clip(self, prep: _Prepared, work: dict[int, list[Setting]]) -> list[dict]:
        """Rows of every (item, setting) of one clip; work: id(item) -> the settings it still needs."""
        from ..chat.generate import Row
        from ..chat.kvcache import new_kv_cache
        from ..chat.scheduler import Job
        from ..chat.tokens import encode_prompt

        if prep.error is not None:
            return [self._row(item, s, error=prep.error, seconds=prep.seconds)
                    for item in prep.items for s in work[id(item)]]
        eng, model, tok = self.engine, self.engine.model, self.engine.tokenizer
        t0 = time.perf_counter()
        vf = self.features(prep)
        t = len(prep.clip.indices)
        pending = []  # (item, setting, [(prompt text, ids, job)] or the error that stopped it)
        for item in prep.items:
            for s in work[id(item)]:
                tokens = eng.visual_tokens(vf, s.strategy)  # (N, D), pooled once per (clip, strategy)
                n = s.strategy.n_tokens(t, self.loaded.spec.frame_grid)
                asks = []
                for q in item.questions:
                    parts = self.protocol.parts(q)
                    ids = encode_prompt(tok, parts)
                    room = self.loaded.context_length - (len(ids) - 1 + n)
                    if room < self.gen.max_new_tokens:
                        for _, _, job in asks:  # a consistency pair's first question: not needed any more
                            job.cancel()
                        asks = f"The prompt and {n} visual tokens leave {room} of the {self.gen.max_new_tokens} answer tokens."
                        break
                    with torch.inference_mode():
                        expanded, _ = model.expand_image_token(torch.tensor([ids]), n)  # (1, S)
                        embeds = model.embed(expanded.to(model.device), tokens)  # (1, S, D)
                    row = Row.new(self.gen, eng.vocab_size, model.device, None, self.gen.max_new_tokens)
                    job = eng.submit(Job(embeds, new_kv_cache(), 0, row, alpha=s.alpha))
                    asks.append(("".join(piece for piece, _ in parts), ids, job))
                pending.append((item, s, asks))
        rows = []
        for item, s, asks in pending:
            if isinstance(asks, str):
                rows.append(self._row(item, s, error=asks, seconds=prep.seconds))
                continue
            try:
                answers = [(text, ids, stop_at_keywords(tok, list(job.tokens()), self.protocol.stop_keywords))
                           for text, ids, job in asks]
            except (PllavaError, RuntimeError) as e:
                rows.append(self._row(item, s, error=str(e), seconds=prep.seconds))
                continue
            self.stats["rows"] += 1
            rows.append(self._row(item, s, answers=answers, clip=prep.clip, n_tokens=s.strategy.n_tokens(
                t, self.loaded.spec.frame_grid), seconds=prep.seconds + (time.perf_counter() - t0) / max(1, len(pending))))
        return rows

    def _row(self, item: Item, s: Setting, *, answers=None, error=None, clip=None, n_tokens=0, seconds=0.0) -> dict:
        record = self._records[s]
        row = {"key": row_key(item, record), "task": item.task, "kind": item.kind, "video": item.video,
               "bound": list(item.bound) if item.bound else None, "questions": list(item.asked or item.questions),
               "answer": item.answer, "settings": record}
        if error is not None:
            row["error"] = error
        else:
            tok = self.engine.tokenizer
            preds = [self.protocol.cut(tok.decode(ids + out, skip_special_tokens=True, clean_up_tokenization_spaces=False))
                     for _, ids, out in answers]
            row["preds"] = preds
            if item.kind == "mc":
                row["correct"] = official_match(preds[0], item.answer)
                row["followed"] = follows_instructions(preds[0])
            row["prompts"] = [text for text, _, _ in answers]
            row["prompt_ids_sha256"] = [digest(ids) for _, ids, _ in answers]
            row["answer_ids"] = [out for _, _, out in answers]
            row["frame_indices"] = list(clip.indices)
            row["frames_official"] = clip.exact
            row["visual_tokens"] = n_tokens
        row["seconds"] = round(seconds, 3)
        return row


def run_sweep(sweep: Sweep, todo: list[tuple[Item, list[Setting]]], write: Callable[[dict], None], *,
              workers: int = 2) -> Counter:
    """Decode clips ahead in `workers` threads, run each clip's rows, write them; returns the counters."""
    groups: dict[tuple, list[tuple[Item, list[Setting]]]] = {}
    for item, settings in todo:
        groups.setdefault(item.clip_key, []).append((item, settings))
    clips = list(groups.values())

    def prepare(group):
        sweep.stats["clips_decoded"] += 1
        return sweep.prepare([item for item, _ in group])

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="eval-decode")
    try:
        ahead = [pool.submit(prepare, g) for g in clips[: workers + 1]]
        for i, group in enumerate(clips):
            prep = ahead[i].result()
            if i + workers + 1 < len(clips):
                ahead.append(pool.submit(prepare, clips[i + workers + 1]))
            for row in sweep.run_clip(prep, {id(item): settings for item, settings in group}):
                write(row)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return sweep.stats
