"""Answers decoded together give the same greedy token ids as each answering alone: sessions with
different videos, frames, pooling shapes, LoRA alphas and answer lengths join and leave mid-answer,
long prompts are prefilled in chunks between the others' steps, a stopped row leaves at once, an
error hits only its own row; LoRA rows at alpha 0 are exactly the base output."""

import threading

import pytest
import torch

from pllava_demo.network.checkpoint import load_pllava
from pllava_demo.config import GenerationSettings
from pllava_demo.frames import strategies
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError, ResourceError
from pllava_demo.network.lora import LoRALinear, set_row_alphas
from pllava_demo.studio.model_holder import ModelHolder, server_status
from videos import write_video


def _kv_caches(s) -> int:
    """How many KV caches the engine's budget holds for this session."""
    return sum(1 for key in s.engine.kv_caches.keys() if key[0] == s.id)


def _settings(n):
    return GenerationSettings(max_new_tokens=n, min_new_tokens=n)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("sched")
    return (write_video(d / "a.mp4", n_frames=40, width=160, height=120),
            write_video(d / "b.mp4", n_frames=24, width=96, height=64, pattern="colour"))


# (video, frames, visual tokens: a PLLaVA pooling shape or a strategy, alpha, tokens, question)
CASES = [
    (0, 8, (4, 6, 6), 4.0, 64, "What happens?"),
    (0, 8, (8, 12, 12), 0.0, 9, "Which colour?"),
    (1, 4, (2, 3, 3), 20.0, 30, "Describe it in detail."),
    (1, 6, "video-chatgpt", 4.0, 14, "Who is there?"),  # 6 frame means + the patch means
]


def _engine(tiny_official, **kw) -> Engine:
    return Engine(load_pllava(tiny_official, device="cpu", quantization="none"), **kw)


def _session(eng, videos, case):
    v, frames, *_ = case
    s = eng.new_session()
    s.set_video(videos[v], frames)
    return s


def _ask(s, case, question=None):
    _, _, visual, alpha, n, q = case
    return s.ask(question or q, strategy=strategies.parse(visual), lora_alpha=alpha, settings=_settings(n))


def _ids(eng, s) -> list[int]:
    """The token ids of the session's cached prompt + answer (the KV cache it kept)."""
    (key,) = [k for k in eng.kv_caches.keys() if k[0] == s.id]
    return eng.kv_caches.get(key).ids


@pytest.fixture(scope="module")
def alone(tiny_official, videos):
    """Each case answered with nothing else running: its text, token ids and a follow-up."""
    eng = _engine(tiny_official, batching=False)
    out = []
    for case in CASES:
        s = _session(eng, videos, case)
        first = "".join(_ask(s, case))
        ids = _ids(eng, s)
        follow = "".join(_ask(s, case, "And then?"))
        out.append((first, ids, follow, _ids(eng, s)))
    return out


def test_sessions_joining_and_leaving_mid_answer_get_their_alone_answers(tiny_official, videos, alone):
    eng = _engine(tiny_official, chunk_tokens=128)
    # readers step the shared batch themselves (no thread): one deterministic interleaving of joins and leaves
    eng.scheduler = eng._new_scheduler(False, eng.max_rows)
    sessions = [_session(eng, videos, c) for c in CASES]
    a, b, c, d = (_ask(s, case) for s, case in zip(sessions, CASES))
    got = {0: next(a) + next(a)}  # A answers alone for a while
    got[1] = next(b)  # B's 1.2k-token prompt is read in 128-token chunks while A keeps decoding
    assert eng.stats["prefill_chunks"] > eng.stats["prefills"] + 5
    got[2] = next(c)
    for _ in range(3):
        got[0] += next(a, "")
        got[1] += next(b, "")
        got[2] += next(c, "")
    assert eng.stats["batch_rows_max"] == 3 and eng.stats["mixed_alpha_steps"] > 0
    got[3] = next(d)  # D joins while A, B, C are mid-answer
    got[1] += "".join(b)  # B (alpha 0, 9 tokens) ends first and leaves
    got[0] += "".join(a)
    got[3] += "".join(d)
    got[2] += "".join(c)
    for i, s in enumerate(sessions):
        assert got[i] == alone[i][0], CASES[i]
        assert _ids(eng, s) == alone[i][1], CASES[i]
    # follow-ups start from each session's own kept prefix, again all at once
    reused = eng.stats["reused_tokens"]
    streams = [_ask(s, case, "And then?") for s, case in zip(sessions, CASES)]
    texts = [next(st) for st in streams]
    texts = [t + "".join(st) for t, st in zip(texts, streams)]
    video_tokens = sum(strategies.parse(c[2]).n_tokens(c[1], eng.spec.frame_grid) for c in CASES)
    assert eng.stats["reused_tokens"] - reused > video_tokens  # every session's video prefix was reused
    for i, s in enumerate(sessions):
        assert texts[i] == alone[i][2] and _ids(eng, s) == alone[i][3], CASES[i]
    assert eng.scheduler.slots.rows == 0 and eng.scheduler.slots.nbytes == 0  # nobody answering: memory back


def test_a_stopped_row_frees_its_slot_and_the_others_are_untouched(tiny_official, videos, alone):
    eng = _engine(tiny_official)
    eng.scheduler = eng._new_scheduler(False, eng.max_rows)
    s0, s2 = _session(eng, videos, CASES[0]), _session(eng, videos, CASES[2])
    a, c = _ask(s0, CASES[0]), _ask(s2, CASES[2])
    first = next(a)
    next(c)
    next(c)
    assert eng.scheduler.slots.rows == 2
    # answers in flight hold their prompt's keys once: in their slot, their own caches are empty meanwhile
    assert all(not job.cache.layers for job in eng.scheduler.running)
    c.close()  # the visitor pressed Stop (or went away)
    assert eng.scheduler.slots.rows == 1 and s2.turns[-1].stopped
    assert alone[2][0].strip().startswith(s2.turns[-1].answer)
    kept = _ids(eng, s2)
    assert kept == alone[2][1][: len(kept)]  # its cache holds a prefix of its alone answer
    assert first + "".join(a) == alone[0][0]


def test_an_error_in_a_batched_step_fails_only_its_own_row(tiny_official, videos, alone, monkeypatch):
    eng = _engine(tiny_official)
    eng.scheduler = eng._new_scheduler(False, eng.max_rows)
    sched = eng.scheduler
    real = eng.model.decode
    calls = {"n": 0}

    def flaky(tokens, cache, positions):
        # once all three answer, every batch runs out of memory, and so does the alpha-20 row alone
        calls["n"] = max(calls["n"], len(sched.running))
        if calls["n"] == 3 and (tokens.shape[0] > 1 or sched.running[cache._lo].alpha == 20.0):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(tokens, cache, positions)

    monkeypatch.setattr(eng.model, "decode", flaky)
    s0, s2, s3 = (_session(eng, videos, CASES[i]) for i in (0, 2, 3))
    streams = [_ask(s, CASES[i]) for s, i in zip((s0, s2, s3), (0, 2, 3))]
    firsts = [next(st) for st in streams]
    with pytest.raises(ResourceError, match="ran out of memory while writing the answer"):
        "".join(streams[1])
    assert s2.turns[-1].stopped and not _kv_caches(s2)
    assert firsts[0] + "".join(streams[0]) == alone[0][0]
    assert firsts[2] + "".join(streams[2]) == alone[3][0]
    assert sched.slots.rows == 0


def test_sessions_in_threads_share_the_batch_and_match_alone(tiny_official, videos, alone):
    eng = _engine(tiny_official, chunk_tokens=128)
    assert eng.batching and eng.scheduler.threaded
    sessions = [_session(eng, videos, c) for c in CASES]
    got = [None] * len(CASES)

    def answer(i):
        got[i] = "".join(_ask(sessions[i], CASES[i]))

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(CASES))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert got == [x[0] for x in alone]
    assert [_ids(eng, s) for s in sessions] == [x[1] for x in alone]


def test_alpha_zero_rows_are_exactly_the_base_output():
    torch.manual_seed(0)
    base = torch.nn.Linear(16, 24)
    layer = LoRALinear(base, 16, 24, rank=8, alpha=4.0)
    torch.nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(3, 5, 16)
    layer.alpha = 4.0
    want_lora = layer(x)
    set_row_alphas([layer], [0.0, 4.0, 0.0])
    mixed = layer(x)
    set_row_alphas([layer], None)
    assert torch.equal(mixed[0], base(x)[0]) and torch.equal(mixed[2], base(x)[2])
    assert torch.equal(mixed[1], want_lora[1])
    assert not torch.equal(mixed[1], base(x)[1])


def test_batching_is_off_under_zerogpu_and_the_engine_says_so(tiny_official, monkeypatch):
    """The engine is told (app.py asks the ZeroGPU runner, the one module that knows), not asking itself."""
    from pllava_demo.studio.zerogpu_runner import forks_per_call

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delenv("PLLAVA_NO_ZEROGPU", raising=False)
    eng = _engine(tiny_official, own_images=not forks_per_call())
    assert not eng.batching and not eng.scheduler.threaded
    assert "off" in eng.batching_note and "GPU worker of its own" in eng.batching_note
    holder = ModelHolder.ready(eng)
    assert server_status(holder)["batching"] is False and "batching is off" in holder.status_markdown()
    # a strategy that needs its own CLIP pass outside an answer is refused at the door, with what to pick
    from pllava_demo.api_types import Bounds, parse_changes

    bounds = Bounds.of(eng)
    for asked in ("ig-vlm", {"name": "ts-llava"}):
        with pytest.raises(InputError, match="ZeroGPU Space can only encode inside an answer; choose PLLaVA"):
            parse_changes({"strategy": asked}, bounds)
    assert parse_changes({"strategy": "video-chatgpt"}, bounds)["strategy"].name == "video-chatgpt"
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    eng = _engine(tiny_official, own_images=not forks_per_call())
    assert eng.batching and "together" in eng.batching_note
    assert parse_changes({"strategy": "ig-vlm"}, Bounds.of(eng))["strategy"].name == "ig-vlm"


def test_slot_rows_double_and_attention_never_reads_unwritten_memory(monkeypatch):
    """Rows join one at a time: the buffers grow by doubling up to max_rows (not by one row, which
    copied every live row again for each newcomer), and every column a live row's attention can read
    is written: its own keys, else zeros (masked columns still enter as 0 * value; 0 * NaN is NaN).
    Fresh buffers are poisoned with NaN here so that an unwritten column shows."""
    from transformers import DynamicCache

    from pllava_demo.chat.scheduler import SlotCache

    real_new_empty = torch.Tensor.new_empty
    monkeypatch.setattr(torch.Tensor, "new_empty", lambda self, *size, **kw: real_new_empty(self, *size, **kw).fill_(float("nan")))

    def cache(n, seed):
        c = DynamicCache()
        g = torch.Generator().manual_seed(seed)
        for layer in range(2):
            c.update(torch.randn(1, 2, n, 4, generator=g), torch.randn(1, 2, n, 4, generator=g), layer)
        return c

    slots, sources, capacity = SlotCache(max_rows=6), [], []
    for b, n in enumerate([5, 300, 7, 40, 3, 9]):  # the second row makes the buffers longer too
        c = cache(n, b)
        sources.append(c.layers[:])
        slots.add(c, room=4)
        assert not c.layers  # moved: an answer in flight holds its prompt's keys once
        capacity.append(slots.k[0].shape[0])
    assert capacity == [1, 2, 4, 4, 6, 6]

    def check():
        span = max(slots.lens)
        for layer in range(2):
            for buf in (slots.k[layer], slots.v[layer]):
                assert torch.isfinite(buf[: slots.rows, :, :span]).all()

    check()
    for b, src in enumerate(sources):
        n = slots.lens[b]
        assert torch.equal(slots.k[1][b, :, :n], src[1].keys[0])
        assert torch.equal(slots.v[1][b, :, :n], src[1].values[0])
    assert slots.remove(1) == 5  # the last row moves into the freed slot
    check()
    assert torch.equal(slots.k[0][1, :, : slots.lens[1]], sources[5][0].keys[0])
    back = DynamicCache()
    slots.move_back(1, back)  # the row comes back whole into its job's emptied cache
    assert back.get_seq_length() == 9 and torch.equal(back.layers[0].keys[0], sources[5][0].keys[0])
