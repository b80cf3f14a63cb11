"""The one decode loop: every answer being written (a chat turn, a caption) is a `Job`; a `Scheduler`
runs the decode steps of all its jobs as one batch, and prefills newcomers between those steps.

- Jobs join and leave between steps. A job's prompt is prefilled alone on its own KV cache (the
  session's growing cache, so a follow-up reuses the prefix kept from the last turn); while other
  answers are streaming it is prefilled in chunks of `chunk_tokens`, one chunk between two decode
  steps, so their tokens keep flowing while a newcomer's video is read.
- Then its cache is moved into a slot of the `SlotCache`: per layer one (rows, heads, length, dim)
  buffer, each row filled to its own length; the job's own cache is emptied meanwhile, so an answer
  in flight holds its prompt's keys once, not twice. A decode step writes each row's new key/value
  at its own position (index ops) and attends over [:longest] with a per-row mask, so rows of
  different lengths never see each other's padding. When a job ends, its row (prompt and answer)
  is moved back into its own cache and its slot is handed to the last row, so live rows stay in
  slots 0..n-1 and a step is one contiguous view.
- LoRA strength per row: when rows differ, lora.set_row_alphas gives each row its own alpha for the
  step (rows at alpha 0 keep the base output exactly); when they agree, the one-alpha path runs.
- Stop, disconnect and errors touch only their own job: a cancelled job leaves at the next step and
  frees its slot at once; a failed batched step (out of memory, ...) is retried row by row and only
  a row that fails alone gets the error.

Why our own and not a library's: transformers' continuous batching (`generate_batch` /
`ContinuousBatchingManager` with a paged cache, attn_implementation "sdpa_paged"; its docs:
huggingface.co/docs/transformers/continuous_batching) takes lists of token ids per request, not embeddings with the
video tokens scattered in, has no per-request LoRA scale and no way to start a request from a KV
prefix we kept for this session; vLLM and TGI have all three ideas (paged KV with prefix caching,
chunked prefill mixed with decode, multi-LoRA per request) but are whole servers with their own
model code. So this file takes their scheduling ideas (iteration-level batching, chunked prefill,
slots freed the moment a request ends) over our own model and caches.

Knows tensors, the model's `prefill` / `decode` and generate.py's sampler; nothing of text, prompts
or sessions (engine.py) nor of the UI.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import torch

from .generate import Row, Sampler
from .kvcache import grown_length
from ..network.lora import set_row_alphas

log = logging.getLogger(__name__)
IDLE_EXIT_S = 5.0  # the stepping thread ends after this long with nothing to do
_END = object()


class SlotCache:
    """Keys and values of the rows being decoded: per layer buffers (R, H, L, Dh); row b filled to
    lens[b]. Behaves as a transformers cache for one decode step over rows [lo, hi) (see `select`)."""

    def __init__(self, max_rows: int | None = None):
        self.max_rows = max_rows  # rows are never allocated beyond this
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.lens: list[int] = []  # per live row, host ints
        self._lo = self._hi = 0
        self._pos: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return len(self.lens)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def _ensure(self, rows: int, length: int, like: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        have_r = self.k[0].shape[0] if self.k else 0
        have_l = self.k[0].shape[2] if self.k else 0
        if rows <= have_r and length <= have_l:
            return
        # rows double and lengths grow by kvcache's rule, so growing is amortised: growing by
        # one row at a time copied every live row again for each newcomer (measured: 0.40 s of a 3.2 s
        # benchmark round of 4 follow-ups joining at once, bench_concurrency.py)
        r = have_r if rows <= have_r else max(rows, min(2 * have_r, self.max_rows or 2 * have_r), 1)
        n = have_l if length <= have_l else grown_length(length)
        grow, live = bool(self.k), self.rows
        for i, (k, v) in enumerate(like):
            # not zero-filled: every row is written up to its length, and `add` zeroes the rest of its
            # row, since masked columns still enter attention as 0 * value (uninitialised memory may be NaN)
            new_k = k.new_empty(r, k.shape[1], n, k.shape[-1])
            new_v = v.new_empty(r, v.shape[1], n, v.shape[-1])
            if grow:
                new_k[:live, :, :have_l] = self.k[i][:live]
                new_v[:live, :, :have_l] = self.v[i][:live]
                new_k[:live, :, have_l:] = 0
                new_v[:live, :, have_l:] = 0
                self.k[i], self.v[i] = new_k, new_v
            else:
                self.k.append(new_k)
                self.v.append(new_v)

    def add(self, cache, room: int) -> int:
        """Move a (1, H, n, Dh)-per-layer cache into a new last slot with room for `room` more tokens:
        the cache is left empty (its layers dropped, so their memory goes back), so an answer in flight
        holds its prompt's keys once, not twice; `move_back` returns them with the answer's."""
        if cache.layer_class_to_replicate is None:
            raise TypeError("SlotCache.add takes a cache that re-creates its layers (kvcache.new_kv_cache)")
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        n = layers[0][0].shape[2]
        slot = self.rows
        self._ensure(slot + 1, n + room, layers)
        for i, (k, v) in enumerate(layers):
            self.k[i][slot, :, :n] = k[0]
            self.v[i][slot, :, :n] = v[0]
            self.k[i][slot, :, n:] = 0
            self.v[i][slot, :, n:] = 0
        self.lens.append(n)
        cache.layers.clear()
        return slot

    def move_back(self, slot: int, cache) -> None:
        """Write this slot's tokens (prompt and answer) into the empty cache `add` left (the job's own)."""
        end = self.lens[slot]
        for i in range(len(self.k)):
            cache.update(self.k[i][slot : slot + 1, :, :end], self.v[i][slot : slot + 1, :, :end], i)

    def remove(self, slot: int) -> int | None:
        """Free a slot; the last row moves into it (returned: its old slot), so rows stay 0..n-1."""
        last = self.rows - 1
        moved = None
        if slot != last:
            n = self.lens[last]
            for i in range(len(self.k)):
                self.k[i][slot, :, :n] = self.k[i][last, :, :n]
                self.v[i][slot, :, :n] = self.v[i][last, :, :n]
            self.lens[slot] = n
            moved = last
        self.lens.pop()
        if not self.lens:
            self.k, self.v = [], []  # nobody is answering: the memory goes back
        return moved

    # -- one step over rows [lo, hi), as a transformers cache -------------------------------------
    def select(self, lo: int, hi: int) -> torch.Tensor:
        """Rows the next forward pass runs; returns their positions (hi - lo,) = their lengths."""
        self._lo, self._hi = lo, hi
        self._pos = torch.tensor(self.lens[lo:hi], device=self.k[0].device)
        self._span = max(self.lens[lo:hi]) + 1
        return self._pos

    def attention_mask(self) -> torch.Tensor:
        """(B, 1, 1, L) bool: row b sees its own tokens 0..lens[b] (the new one included), nothing past."""
        cols = torch.arange(self._span, device=self._pos.device)
        return (cols[None, :] <= self._pos[:, None])[:, None, None, :]

    def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
        lo, hi = self._lo, self._hi
        rows = torch.arange(lo, hi, device=key_states.device)
        self.k[layer_idx][rows, :, self._pos] = key_states[:, :, 0]  # (B, H, Dh) at each row's own position
        self.v[layer_idx][rows, :, self._pos] = value_states[:, :, 0]
        return self.k[layer_idx][lo:hi, :, : self._span], self.v[layer_idx][lo:hi, :, : self._span]

    def commit(self, lo: int, hi: int) -> None:
        for b in range(lo, hi):
            self.lens[b] += 1

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._span - 1

    is_compileable = False


class Job:
    """One answer. Built by its owner (chat engine, captioner) with the prompt's embeddings after what
    `cache` already holds; read with `tokens()`, stopped with `cancel()`. After `done` is set, the
    answer's keys and values are in `cache` and `fed` lists their ids (unless `error` is set)."""

    def __init__(self, embeds: torch.Tensor, cache, start: int, row: Row, *, alpha: float | None = None,
                 on_logits: Callable[[int, torch.Tensor], None] | None = None):
        self.embeds = embeds  # (1, S, D): the prompt after the cached prefix
        self.cache, self.start, self.row, self.alpha = cache, start, row, alpha
        self.on_logits = on_logits
        self.prefilled = 0
        self.fed: list[int] = []
        self.next_token: int | None = None
        self.error: BaseException | None = None
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.done = threading.Event()
        self.cancelled = False
        self._scheduler: Scheduler | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self._scheduler is not None:
            self._scheduler._wake()

    def stop(self, timeout: float) -> bool:
        """Cancel and wait until the job has left (its cache is then complete); False if it did not in time."""
        self.cancel()
        sched = self._scheduler
        if sched is not None and not sched.threaded:
            while not self.done.is_set() and sched.has_work():
                sched.step()
        return self.done.wait(timeout)

    def tokens(self) -> Iterator[int]:
        """The answer's ids as they come; raises the job's error. Pumps the scheduler when it has no thread."""
        sched = self._scheduler
        while True:
            if sched is not None and not sched.threaded:
                while self.events.empty():
                    sched.step()
            item = self.events.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Scheduler:
    """Runs jobs' prefills and batched decode steps. threaded: a daemon thread steps whenever there is
    work; otherwise whoever reads a job's tokens steps it (ZeroGPU workers, the captioner)."""

    def __init__(self, model, sampler: Sampler, *, lock=None, lora_layers=(), set_alpha: Callable | None = None,
                 max_rows: int = 8, chunk_tokens: int = 256, stats: Counter | None = None,
                 guard: Callable | None = None, threaded: bool = True):
        if max_rows < 1 or chunk_tokens < 1:
            raise ValueError(f"max_rows and chunk_tokens must be at least 1, got {max_rows} and {chunk_tokens}")
        self.model, self.sampler = model, sampler
        self.lock = lock or threading.RLock()
        self.lora_layers = list(lora_layers)
        self.set_alpha = set_alpha or (lambda alpha: None)
        self.max_rows, self.chunk_tokens, self.threaded = max_rows, chunk_tokens, threaded
        self.stats = stats if stats is not None else Counter()
        self.guard = guard or (lambda doing, fn, *args: fn(*args))
        self.slots = SlotCache(max_rows)
        self.pending: list[Job] = []
        self.running: list[Job] = []  # running[i] is in slot i
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False  # set by wait_idle: an idle thread ends at once instead of after IDLE_EXIT_S

    def submit(self, job: Job) -> Job:
        job._scheduler = self
        with self._cond:
            self.pending.append(job)
            self._closing = False
            self._cond.notify()
            if self.threaded and self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pllava-scheduler", daemon=True)
                self._thread.start()
        return job

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the stepping thread has ended (no work left): a process must not exit while that
        daemon thread is inside a torch call, which aborts the interpreter ("terminate called without an
        active exception"). True when it ended in time."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def has_work(self) -> bool:
        return bool(self.pending or self.running)

    def run(self) -> None:
        """Step until every job submitted so far has ended (no thread)."""
        while self.has_work():
            self.step()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self.has_work() and not self._closing:
                    self._cond.wait(IDLE_EXIT_S)
                if not self.has_work():  # idle: the thread ends (submit starts another), so an engine
                    self._thread = None  # nobody uses any more is not kept alive by its thread
                    return
            try:
                self.step()
            except BaseException as e:  # noqa: BLE001 - a bug here must end the jobs, not hang their readers
                log.exception("scheduler step failed")
                for job in list(self.running) + list(self.pending):
                    self._fail(job, e)

    # -- one round: reap, prefill, decode ---------------------------------------------------------
    def step(self) -> None:
        with self.lock, torch.inference_mode():
            with self._cond:
                cancelled = [j for j in self.running + self.pending if j.cancelled]
            for job in cancelled:
                self._finish(job)
            self._prefill_round()
            if self.running:
                self._decode_step()

    def _prefill_round(self) -> None:
        with self._cond:
            waiting = [j for j in self.pending if not j.cancelled]
        free = self.max_rows - len(self.running)
        if not waiting or free <= 0:
            return
        if self.running:  # others are streaming: one chunk of the oldest newcomer, then their next token
            self._prefill(waiting[0], self.chunk_tokens)
            return
        for job in waiting[:free]:  # nobody is waiting for a token: read whole prompts
            self._prefill(job, None)

    def _prefill(self, job: Job, chunk: int | None) -> None:
        total = job.embeds.shape[1]
        n = total - job.prefilled if chunk is None else min(chunk, total - job.prefilled)
        part = job.embeds[:, job.prefilled : job.prefilled + n]  # (1, n, D)
        try:
            self.set_alpha(job.alpha)
            logits = self.guard("reading the video and question", self.model.prefill, part, job.cache,
                                job.start + job.prefilled)  # (1, V)
        except Exception as e:  # noqa: BLE001 - this job's error, given to its reader
            self._fail(job, e)
            return
        job.prefilled += n
        self.stats["prefill_chunks"] += 1
        if job.prefilled < total:
            return
        self.stats["prefills"] += 1
        self.stats["prefill_tokens"] += total
        self.stats["reused_tokens"] += job.start
        job.embeds = None  # no longer needed: its memory goes back
        with self._cond:
            self.pending.remove(job)
        token = self._pick([job], logits)[0]
        if token is None:
            self._finish(job)
            return
        job.next_token = token
        try:
            self.slots.add(job.cache, room=job.row.limit + 1)
        except Exception as e:  # noqa: BLE001 - e.g. no memory for the slot: this job's error
            self._fail(job, e)
            return
        self.running.append(job)

    def _pick(self, jobs: list[Job], logits: torch.Tensor) -> list[int | None]:
        """Sample each job's next id, hand it to its reader; None where the job ends without one to feed."""
        rows = [j.row for j in jobs]
        for j, row_logits in zip(jobs, logits):
            if j.on_logits is not None:
                j.on_logits(j.row.count, row_logits)
        picks = self.sampler.pick(logits, rows).tolist()  # the one host sync per step
        ended = self.sampler.advance(picks, rows)
        out = []
        for j, t, end in zip(jobs, picks, ended):
            if t not in self.sampler.stop_ids:
                j.events.put(t)
            out.append(None if end else t)
        return out

    def _decode_step(self) -> None:
        jobs = list(self.running)
        logits = self._forward(0, len(jobs))
        if logits is None:  # the batch failed: each row alone, so only a row that fails alone fails
            parts, failed = [], []
            for b in range(len(jobs)):
                try:
                    parts.append(self._forward(b, b + 1, alone=True))
                except Exception as e:  # noqa: BLE001
                    failed.append((jobs[b], e))  # failed after the loop: freeing a slot renumbers the rows
                    parts.append(None)
            for job, e in failed:
                self._fail(job, e)
            ok = [b for b, p in enumerate(parts) if p is not None]
            jobs, logits = [jobs[b] for b in ok], (torch.cat([parts[b] for b in ok]) if ok else None)
        if not jobs:
            return
        for job in jobs:
            job.fed.append(job.next_token)
        self.stats["decode_steps"] += len(jobs)
        self.stats["batched_steps"] += 1
        self.stats["batch_rows_max"] = max(self.stats["batch_rows_max"], len(jobs))
        for job, token in zip(jobs, self._pick(jobs, logits)):
            if token is None:
                self._finish(job)
            else:
                job.next_token = token

    def _forward(self, lo: int, hi: int, alone: bool = False) -> torch.Tensor | None:
        """Logits (hi - lo, V) of one decode step of slots [lo, hi); None if a batch of several failed."""
        jobs = self.running[lo:hi]
        alphas = [j.alpha for j in jobs]
        positions = self.slots.select(lo, hi)
        tokens = torch.tensor([j.next_token for j in jobs], device=positions.device)
        mixed = self.lora_layers and len(set(alphas)) > 1
        try:
            if mixed:
                set_row_alphas(self.lora_layers, alphas, positions.device)
                self.stats["mixed_alpha_steps"] += 1
            else:
                self.set_alpha(alphas[0])
            if hi - lo == 1 or alone:
                logits = self.guard("writing the answer", self.model.decode, tokens, self.slots, positions)
            else:
                try:
                    logits = self.model.decode(tokens, self.slots, positions)
                except Exception as e:  # noqa: BLE001 - retried row by row by the caller
                    log.warning("a batched step of %d rows failed (%s): retrying row by row", hi - lo, e)
                    return None
        finally:
            if mixed:
                set_row_alphas(self.lora_layers, None)
        self.slots.commit(lo, hi)
        return logits

    # -- leaving ----------------------------------------------------------------------------------
    def _finish(self, job: Job) -> None:
        """The job is over (its end, or cancelled): its keys go back to its cache, its slot is freed."""
        if job in self.running:
            slot = self.running.index(job)
            try:
                self.slots.move_back(slot, job.cache)
            except Exception as e:  # noqa: BLE001 - e.g. no memory for it: the answer stands, its cache does not
                job.error = e
            self._free(slot)
        with self._cond:
            if job in self.pending:
                self.pending.remove(job)
        job.embeds = None
        job.events.put(_END)
        job.done.set()

    def _fail(self, job: Job, error: BaseException) -> None:
        if job in self.running:
            self._free(self.running.index(job))
        with self._cond:
            if job in self.pending:
                self.pending.remove(job)
        job.error, job.embeds = error, None
        job.events.put(error)
        job.done.set()

    def _free(self, slot: int) -> None:
        moved = self.slots.remove(slot)
        last = self.running.pop()
        if moved is not None:
            self.running[slot] = last
