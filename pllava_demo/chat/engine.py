"""The chat engine: a video is decoded and encoded once, a question costs only its new tokens.

Caches, from cheap to dear:
- projected, un-pooled frame features per (file content, number of frames), in a byte-budgeted
  LRU shared by all sessions: a new question, strategy (strategies.py) or LoRA alpha never re-decodes
  the video; CLIP runs again only for a strategy that makes images of its own (a grid, a thumbnail),
  once per (video, strategy); the visual tokens are remembered per (video, strategy);
- each session's KV cache of the prompt it last ran, reused up to the longest common token prefix
  when the next prompt starts the same way and was made with the same visual tokens and alpha.
  KV caches are big (about 0.5 MiB per token for 7B in bf16), so they too live under a byte budget
  across sessions: the least recently used is dropped and simply re-prefilled if needed.

The model is shared: answers in flight are decoded together as one batch by the scheduler
(scheduler.py), each row with its own LoRA alpha; one lock guards every forward pass (a batched
step, a prefill chunk, CLIP), taken per step (not per answer), so an abandoned stream can never
block other users. Where every model call runs in a process of its own (`own_images=False`, which
the caller that knows its host passes) there is nothing to batch with: batching is off.
Every limit in `Limits` is checked before work starts, and running out of (GPU) memory in a forward
pass is a `ResourceError` for that one request: its memory is released and the next request runs.
This module knows no UI and no command line.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ..config import DEFAULT_LIMITS, GenerationSettings, Limits, PoolingShape, check_lora_alpha, check_pooling_shape
from ..caches import ByteLRU
from ..errors import CheckpointError, InputError, PllavaError
from ..refusals import NO_VIDEO, NOTHING_TO_REGENERATE
from ..settings import GENERATION
from .features import VideoFeatures, feature_key, tensor_nbytes
from .generate import Row, Sampler
from .kvcache import cache_nbytes, new_kv_cache
from .memory import guarded, release_memory
from ..network.lora import LoRALinear
from ..frames import strategies
from .scheduler import Job, Scheduler
from ..frames.strategies import PllavaPooling, Strategy
from .prompt import (DEFAULT_SYSTEM, TextStream, Turn, chat_format_for, encode_prompt, fit_prompt,
                     stop_token_ids)

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


@dataclass
class _KV:
    signature: tuple
    ids: list[int]
    cache: object

    @property
    def nbytes(self) -> int:
        return cache_nbytes(self.cache)


@dataclass(frozen=True)
class AnswerUsage:
    """Token counts of one answer, for a door that reports them (the OpenAI API's `usage`)."""

    prompt_tokens: int  # the whole prompt, its visual tokens included
    video_tokens: int
    cached_tokens: int  # of the prompt, taken from the KV cache instead of prefilled
    completion_tokens: int  # the answer's ids, a stop id not counted
    hit_limit: bool  # ended at its token budget, not by a stop id


JOB_WAIT_S = 120.0  # a stream's end waits this long at most for its row to leave the batch
KV_PER_SESSION = 3  # KV caches a session keeps, one per recent (video, frames, strategy, alpha)


def _drop_session_caches(budget: ByteLRU, session_id: int) -> None:
    for key in budget.keys():
        if key[0] == session_id:
            budget.pop(key)


class Engine:
    """One loaded model shared by every session."""

    def __init__(self, loaded, limits: Limits = DEFAULT_LIMITS, *, batching: bool | None = None, max_rows: int = 8,
                 chunk_tokens: int = 256, own_images: bool = True):
        if loaded.tokenizer is None:
            raise CheckpointError(f"{loaded.path} has no tokenizer, so it cannot chat; add the tokenizer files.")
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.spec = loaded.spec
        self.limits = limits
        self.format = chat_format_for(self.tokenizer, loaded.family)
        self.stop_ids = stop_token_ids(self.tokenizer, self.format)
        self.lock = threading.RLock()
        self.feature_cache = ByteLRU(limits.feature_cache_mb * 2**20, lambda v: v.nbytes)
        self.pooled = ByteLRU(limits.feature_cache_mb * 2**20 // 4, tensor_nbytes)  # (video, frames, shape) -> tokens
        self.kv_caches = ByteLRU(limits.kv_cache_mb * 2**20, lambda kv: kv.nbytes)  # (session id, signature) -> _KV
        self.stats: Counter = Counter()
        self._lora_layers = [m for m in self.model.modules() if isinstance(m, LoRALinear)]
        self._default_alpha = loaded.lora_alpha if self.spec.has_lora else None
        self._session_ids = itertools.count()
        self.vocab_size = self.model.language_model.get_output_embeddings().weight.shape[0]
        self.sampler = Sampler(self.stop_ids, self.model.device)
        # own_images=False: every model call runs in a worker process of its own (the caller knows where),
        # so there is nothing to batch with, and no CLIP pass outside an answer
        # for the strategies that build their own image (api_types refuses them there)
        self.own_images = bool(own_images)
        if batching is None:
            batching = self.own_images
        self.batching = bool(batching)
        self.max_rows, self.chunk_tokens = max_rows, chunk_tokens
        self.scheduler = self._new_scheduler(self.batching, max_rows)

    def _new_scheduler(self, threaded: bool, rows: int) -> Scheduler:
        return Scheduler(self.model, self.sampler, lock=self.lock, lora_layers=self._lora_layers,
                         set_alpha=self._apply_alpha, max_rows=rows, chunk_tokens=self.chunk_tokens,
                         stats=self.stats, guard=self._guarded, threaded=threaded)

    def submit(self, job: Job) -> Job:
        """Start an answer: in the shared batch, or (batching off) in a scheduler of its own that its
        reader steps, in the reader's own thread and process."""
        sched = self.scheduler if self.batching else self._new_scheduler(False, 1)
        return sched.submit(job)

    @property
    def batching_note(self) -> str:
        """One line for the page and /status: how answers share the model."""
        if self.batching:
            return (f"up to {self.max_rows} answers decoded together, "
                    f"long prompts read in {self.chunk_tokens}-token chunks between their steps")
        if not self.own_images:
            return "batching is off (each answer runs in a GPU worker of its own): answers take turns"
        return "batching is off: answers take turns"

    @classmethod
    def load(cls, source, *, limits: Limits = DEFAULT_LIMITS, batching: bool | None = None, max_rows: int = 8,
             own_images: bool = True, **kwargs) -> "Engine":
        from ..network.checkpoint import load_pllava

        return cls(load_pllava(source, **kwargs), limits, batching=batching, max_rows=max_rows, own_images=own_images)

    # -- settings ---------------------------------------------------------------------------------
    @property
    def default_alpha(self) -> float | None:
        """The alpha a question gets when it names none: the one the model was loaded with (official 4).
        With an Engine, pass lora_alpha per question: each forward pass re-applies its own."""
        return self._default_alpha

    def _apply_alpha(self, alpha: float | None) -> None:
        """Called under the lock before every forward pass: sessions may want different alphas."""
        if alpha is None or not self._lora_layers or self._lora_layers[0].alpha == alpha:
            return
        for layer in self._lora_layers:
            layer.alpha = alpha

    def check_alpha(self, alpha: float | None) -> float | None:
        if not self.spec.has_lora:
            return None
        return self.default_alpha if alpha is None else check_lora_alpha(alpha)

    def strategy(self, strategy=None) -> Strategy:
        """Any form strategies.parse takes (None: the checkpoint's own PLLaVA pooling), checked
        against this model's patch grid."""
        s = strategies.parse(strategy, self.spec.pooling_shape)
        if isinstance(s, PllavaPooling):
            check_pooling_shape(s.shape, self.spec.frame_grid)
        return s

    # -- video ------------------------------------------------------------------------------------
    def prepare_video(self, path, num_frames: int, progress: Progress | None = None, *,
                      start_s: float | None = None, end_s: float | None = None) -> VideoFeatures:
        """Decode + preprocess + CLIP + projector, once per (file content, num_frames, time range)."""
        from ..frames.pixel_check import check_pixels
        from ..frames.video import check_file, content_key, read_video

        num_frames = self.limits.check_frames(num_frames)
        path = check_file(path, max_mb=self.limits.max_file_mb)  # before hashing or decoding a byte
        file_key = content_key(path)
        key = feature_key(file_key, num_frames, (start_s, end_s))
        cached = self.feature_cache.get(key)
        if cached is not None:
            self.stats["feature_cache_hits"] += 1
            return cached.shared_as(path)
        check_pixels(path, self.limits.max_pixels)  # from the header, before a frame is decoded
        if progress:
            progress(0.05, "Decoding frames")
        # each frame gets PllavaProcessor's resize as it is decoded (never held at full size), then CLIP's
        clip = read_video(path, num_frames, max_duration=self.limits.max_duration_s,
                          time_budget=self.limits.decode_time_budget_s, resize=self.loaded.pixels.resize, key=file_key,
                          start_s=start_s, end_s=end_s)
        self.stats["videos_decoded"] += 1
        if progress:
            progress(0.4, "Encoding frames with CLIP")
        pixels = self.loaded.pixels.normalise(clip.frames)  # (T, 3, 336, 336)
        feats = self._guarded("encoding the video", self._encode, pixels)  # (T, H*W, D)
        self.stats["vision_calls"] += 1
        self.stats["vision_frames"] += pixels.shape[0]
        vf = VideoFeatures(clip=clip, features=feats, num_frames=num_frames)
        self.feature_cache.put(key, vf)  # shared by content: a later hit gets it under its own name (shared_as)
        if progress:
            progress(1.0, "Ready")
        return vf

    def visual_tokens(self, vf: VideoFeatures, strategy=None) -> torch.Tensor:
        """(N, D) visual tokens of this clip by this strategy (a pooling shape is PLLaVA's), remembered
        per (video, frames, strategy) in a small shared LRU: the heat map and the next prefill with the
        same strategy do not compute them again."""
        s = self.strategy(strategy)
        key = vf.key + (s.key,)
        tokens = self.pooled.get(key)
        if tokens is None:
            extra = self._strategy_features(vf, s) if s.changes_frames else None
            with torch.inference_mode():
                tokens = self.model.pool(vf.features, s, extra)  # (N, D)
            self.pooled.put(key, tokens)
        return tokens

    def _strategy_features(self, vf: VideoFeatures, s: Strategy) -> torch.Tensor:
        """(K, H*W, D) projected features of the images a strategy makes from the decoded frames (a
        grid, a thumbnail): one CLIP pass per (video, strategy), never a new decode."""
        key = vf.key + ("images", s.key)
        feats = self.pooled.get(key)
        if feats is None:
            pixels = s.frame_images(vf.clip.frames, self.loaded.pixels)  # (K, 3, 336, 336)
            feats = self._guarded("encoding the video", self._encode, pixels)  # (K, H*W, D)
            self.stats["vision_calls"] += 1
            self.stats["strategy_vision_calls"] += 1
            self.stats["vision_frames"] += pixels.shape[0]
            self.pooled.put(key, feats)
        return feats

    def token_norms(self, vf: VideoFeatures, strategy=None) -> torch.Tensor | list[tuple[str, torch.Tensor]]:
        """L2 norms of the visual tokens, for the UI's heat map: (T', h', w') for PLLaVA pooling (its
        grid), and for any strategy a list of (label, (h, w) norms) panels in token order."""
        s = self.strategy(strategy)
        norms = self.visual_tokens(vf, s).float().norm(dim=-1).cpu()  # (N,)
        if isinstance(s, PllavaPooling):
            return norms.reshape(s.shape)
        out, at = [], 0
        for label, (h, w) in s.panels(vf.features.shape[0], self.spec.frame_grid):
            part = norms[at:at + h * w]
            at += h * w
            out.append((label, torch.cat([part, part.new_full((h * w - part.numel(),), float("nan"))]).reshape(h, w)))
        return out

    def describe_view(self, vf: VideoFeatures, strategy=None) -> dict:
        """What the model sees for this clip and strategy, in numbers for the UI."""
        s = self.strategy(strategy)
        t = vf.features.shape[0]
        n = s.n_tokens(t, self.spec.frame_grid)
        info = {
            "frames": t, "strategy": s.as_dict(), "strategy_text": s.describe(t), "visual_tokens": n,
            "context": self.loaded.context_length, "context_share": n / self.loaded.context_length,
            "timestamps": [round(float(x), 3) for x in vf.clip.timestamps],
        }
        if isinstance(s, PllavaPooling):
            info["pooling_shape"] = s.shape
        note = s.note(t, self.spec.frame_grid)
        if note:
            info["note"] = note
        return info

    def _guarded(self, doing: str, fn: Callable, *args):
        """fn(*args), running out of memory being a ResourceError for this request (memory.guarded)."""
        return guarded(doing, fn, *args, device_type=self.model.device.type, stats=self.stats)

    release_memory = staticmethod(release_memory)

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.lock, torch.inference_mode():
            return self.model.encode_frames(pixels)  # (T, H*W, D)

    def new_session(self, system: str = DEFAULT_SYSTEM) -> "ChatSession":
        return ChatSession(self, self.limits.check_system(system))


ROOM_FOR_A_TURN = 256  # tokens a system prompt must leave for a question and an answer


def _check_system_fits(eng: "Engine", system: str, n_video_tokens: int) -> None:
    """The system prompt's limit follows the context window and this video's tokens: InputError naming
    the system prompt when it leaves less than ROOM_FOR_A_TURN tokens for a question and its answer."""
    if not system:
        return
    n_system = len(encode_prompt(eng.tokenizer, eng.format.parts(system, (), ""))) - len(
        encode_prompt(eng.tokenizer, eng.format.parts("", (), "")))
    most = eng.loaded.context_length - n_video_tokens - ROOM_FOR_A_TURN
    if n_system > most:
        raise InputError(f"The system prompt is {n_system:,} tokens; with this video's {n_video_tokens:,} visual "
                         f"tokens the {eng.loaded.context_length:,}-token context leaves room for "
                         f"{max(0, most):,}: shorten the system prompt.")


@dataclass(frozen=True)
class _VideoRef:
    """What a session keeps of its video: the feature cache's key and how to read it again."""

    key: tuple
    source: str
    num_frames: int
    start_s: float | None
    end_s: float | None


LOST = ("This chat's video was freed to make room for other visitors and could not be read again; "
        "please upload it again.")


@dataclass
class ChatSession:
    """One person's conversation about one video. Not shared between users.
    The video is held by its key in the engine's feature cache, so every session's video memory is
    inside that one budget: a video the cache let go is read and encoded again when next needed."""

    engine: Engine
    system: str = DEFAULT_SYSTEM
    turns: list[Turn] = field(default_factory=list)
    notice: str | None = None
    closed: bool = False
    id: int = -1
    epoch: int = 0  # bumped whenever the chat starts over: an answer begun before then is not kept
    last_usage: AnswerUsage | None = None  # the token counts of the last answer that started
    _video: _VideoRef | None = field(default=None, repr=False)
    _lost: str | None = field(default=None, repr=False)  # why the video is gone, when it could not be re-read

    def __post_init__(self):
        self.id = next(self.engine._session_ids)
        weakref.finalize(self, _drop_session_caches, self.engine.kv_caches, self.id)

    @property
    def video(self) -> VideoFeatures | None:
        ref = self._video
        if ref is None:
            return None
        cached = self.engine.feature_cache.get(ref.key)
        if cached is not None:
            return cached.shared_as(ref.source)
        try:  # evicted: read it again (its file is still held by this session)
            vf = self.engine.prepare_video(ref.source, ref.num_frames, start_s=ref.start_s, end_s=ref.end_s)
        except PllavaError as e:
            log.info("session %d could not read its evicted video again: %s", self.id, e)
            self._video, self._lost = None, LOST
            return None
        self.engine.stats["videos_reread"] += 1
        self._video = dataclasses.replace(ref, key=vf.key)
        return vf

    @video.setter
    def video(self, vf: VideoFeatures | None) -> None:
        """Hold `vf` by its key; one made elsewhere (a worker's copy, a benchmark) joins the cache."""
        self._lost = None
        if vf is None:
            self._video = None
            return
        if self.engine.feature_cache.get(vf.key) is None:
            self.engine.feature_cache.put(vf.key, vf)
        start_s, end_s = vf.clip.time_range or (None, None)
        self._video = _VideoRef(vf.key, str(vf.clip.source), vf.num_frames, start_s, end_s)

    def set_video(self, path, num_frames: int = 16, progress: Progress | None = None, *,
                  start_s: float | None = None, end_s: float | None = None) -> VideoFeatures:
        """Use a new video. Changing the number of frames keeps the chat; a new file starts over."""
        self.closed = False
        vf = self.engine.prepare_video(path, num_frames, progress, start_s=start_s, end_s=end_s)
        if self.video is None or self.video.clip.content_key != vf.clip.content_key:
            self.clear()
        self.video = vf
        return vf

    def clear(self) -> None:
        """Start the chat over. An answer still streaming ends without joining the new chat."""
        self.turns, self.notice = [], None
        self.epoch += 1
        self.drop_cache()

    def keep_answer(self, turn: Turn, at: int, epoch: int) -> None:
        """Make `turn` the history's turn number `at`, for an answer streamed from a copy of this
        session (a ZeroGPU worker process): the one way a turn made elsewhere joins this chat. Nothing
        happens if the chat started over since `epoch`, or the turn is there already (same process)."""
        if self.closed or epoch != self.epoch or at > len(self.turns):
            return
        if at < len(self.turns) and (self.turns[at].question, self.turns[at].answer) == (turn.question, turn.answer):
            return
        self.turns[at:] = [turn]

    def drop_cache(self) -> None:
        _drop_session_caches(self.engine.kv_caches, self.id)

    def close(self) -> None:
        """Free the video, chat and KV caches now. A stream still running (its user went away) ends
        without putting its turn or cache back; set_video opens the session again."""
        self.closed = True
        self.clear()
        self.video = None

    def regenerate(self, **kwargs) -> Iterator[str]:
        if not self.turns:
            raise InputError(NOTHING_TO_REGENERATE)
        last = self.turns.pop()
        try:
            return self.ask(last.question, **kwargs)
        except PllavaError:  # refused before any work (e.g. a setting out of range): keep the old answer
            self.turns.append(last)
            raise

    # -- asking -----------------------------------------------------------------------------------
    def ask(self, question: str, *, pooling_shape: PoolingShape | None = None, lora_alpha: float | None = None,
            settings: GenerationSettings = GenerationSettings(), strategy: Strategy | None = None) -> Iterator[str]:
        """Validate now (errors raise before any work), then return a stream of text pieces.
        The answer joins the history when the stream ends, also when it is closed early."""
        eng = self.engine
        question = eng.limits.check_question(question)
        system = eng.limits.check_system(self.system)  # also when set directly on the session
        if self.video is None:
            raise InputError(self._lost or NO_VIDEO)
        GENERATION["max_new_tokens"].check(settings.max_new_tokens, hi=eng.limits.max_new_tokens)
        visual = eng.strategy(strategy if strategy is not None else pooling_shape)
        n_tokens = visual.n_tokens(self.video.features.shape[0], eng.spec.frame_grid)
        visual.check_fits(self.video.features.shape[0], eng.spec.frame_grid, eng.loaded.context_length)
        alpha = eng.check_alpha(lora_alpha)
        _check_system_fits(eng, system, n_tokens)
        try:
            fitted = fit_prompt(eng.tokenizer, eng.format, system, self.turns, question,
                                n_video_tokens=n_tokens, context=eng.loaded.context_length,
                                max_new_tokens=settings.max_new_tokens, max_chars=eng.limits.max_prompt_chars)
        except ValueError as e:
            raise InputError(str(e)) from None
        self.notice = None
        if fitted.dropped_turns:
            self.notice = (f"The {fitted.dropped_turns} oldest turn(s) were left out so the chat fits the "
                           f"{eng.loaded.context_length}-token context window; the video is always kept.")
        if fitted.max_new_tokens < settings.max_new_tokens:
            self.notice = (self.notice or "") + f" The answer is limited to {fitted.max_new_tokens} tokens."
        return self._stream(question, fitted, visual, n_tokens, alpha, settings)

    def _stream(self, question, fitted, visual, n_tokens, alpha, settings) -> Iterator[str]:
        eng, model = self.engine, self.engine.model
        video = self.video
        ids = torch.tensor([fitted.ids])  # (1, L)
        expanded, _ = model.expand_image_token(ids, n_tokens)  # (1, S)
        seq = expanded[0].tolist()
        last_image = len(seq) - 1 - seq[::-1].index(eng.spec.image_token_index)
        epoch = self.epoch
        signature = video.key + (visual.key, alpha)
        text = TextStream(eng.tokenizer, eng.format.stop_strings, anchor_id=fitted.ids[-1])
        answered, failed, kv, job = False, False, None, None

        def embed() -> torch.Tensor:
            nonlocal kv
            with torch.inference_mode():
                kv, start = self._reuse(signature, seq)
                if start > last_image:  # the cache holds the video: embed only the new text
                    return model.embed(expanded[:, start:].to(model.device), None), start  # (1, S - start, D)
                tokens = eng.visual_tokens(video, visual)  # (N, D)
                return model.embed(expanded.to(model.device), tokens)[:, start:], start  # (1, S - start, D)

        try:
            embeds, start = eng._guarded("reading the video and question", embed)
            kv.ids = seq
            prompt_ids = ids[0][ids[0] != eng.spec.image_token_index]
            row = Row.new(settings, eng.vocab_size, model.device, prompt_ids, fitted.max_new_tokens)
            job = eng.submit(Job(embeds, kv.cache, start, row, alpha=alpha))
            del embeds
            for token_id in job.tokens():
                piece = text.push(token_id)
                if piece:
                    yield piece
                if text.stopped:
                    break
            tail = text.finish()
            if tail:
                yield tail
            answered = True
        except Exception:
            failed = True
            raise
        finally:
            if job is not None:  # stopped, disconnected or done: the row leaves the batch at once
                self.last_usage = AnswerUsage(len(seq), n_tokens, start, row.count, row.count >= row.limit)
                if not job.stop(JOB_WAIT_S):
                    failed = True  # still running (a stuck step): its cache cannot be trusted
                elif job.error is None:
                    kv.ids = kv.ids + job.fed
                else:
                    failed = True
            if self.closed:  # closed mid-answer: nobody will ask again, keep nothing
                kv = None
            elif not failed and kv is not None and len(kv.ids) == kv.cache.get_seq_length():
                self._keep(kv)
            else:  # a failed forward pass may have left the cache out of step with its ids, and after
                kv = None  # running out of memory the cache is the first thing to give back
                self.drop_cache()
                eng.release_memory()
            # What the user saw stays in the chat (marked stopped); a failure before any text adds no turn,
            # so retrying does not send an empty answer back to the model as history.
            # A new video or Clear meanwhile started a new chat: this answer belongs to the old one.
            if not self.closed and self.epoch == epoch and (not failed or text.text):
                # The prompt gets the answer as the model wrote it (official: "ASSISTANT: Yes</s>"), so a
                # follow-up's ids match the official template and the KV cache covers the whole answer.
                self.turns.append(Turn(question, text.text, stopped=not answered, raw=text.raw if answered else None))

    def _keep(self, kv: _KV) -> None:
        """Keep this cache for its settings; a session keeps its KV_PER_SESSION most recent settings, so
        flipping a slider back (alpha 4 -> 20 -> 4) costs no prefill."""
        budget = self.engine.kv_caches
        budget.put((self.id, kv.signature), kv)
        mine = [k for k in budget.keys() if k[0] == self.id]
        for old in mine[: max(0, len(mine) - KV_PER_SESSION)]:
            budget.pop(old)

    def _reuse(self, signature: tuple, seq: list[int]) -> tuple[_KV, int]:
        """The session's KV cache for these settings, cropped to the longest prefix it shares with seq,
        or a fresh one. It leaves the budget while in use and returns through _keep."""
        kv = self.engine.kv_caches.get((self.id, signature))
        if kv is None:
            return _KV(signature, [], new_kv_cache()), 0
        self.engine.kv_caches.pop((self.id, signature))
        common = 0
        for a, b in zip(kv.ids, seq):
            if a != b:
                break
            common += 1
        common = min(common, len(seq) - 1)  # recompute at least one token to get the next logits
        cached = kv.cache.get_seq_length()
        if common < cached:
            kv.cache.crop(common - cached)
        kv.ids = kv.ids[:common]
        return kv, common
