"""The chat engine: a video is decoded and encoded once, follow-ups reuse the KV cache and give the
same answers as a fresh prefill, stopping mid-answer leaves the session consistent."""

import pytest
import torch

from pllava_demo.config import GenerationSettings, Limits
from pllava_demo.chat.engine import Engine
from pllava_demo.errors import InputError
from videos import write_video

GREEDY = GenerationSettings(max_new_tokens=8, min_new_tokens=8)


def _kv_caches(s) -> int:
    """How many KV caches the engine's budget holds for this session."""
    return sum(1 for key in s.engine.kv_caches.keys() if key[0] == s.id)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", n_frames=40, width=160, height=120)


@pytest.fixture()
def fresh(tiny_official):
    return Engine.load(tiny_official, device="cpu", quantization="none")


def _count_vision_calls(engine):
    calls = []
    engine.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_follow_ups_and_slider_moves_never_rerun_decode_or_clip(fresh, video):
    calls = _count_vision_calls(fresh)
    s = fresh.new_session()
    s.set_video(video, 8)
    "".join(s.ask("What happens?", settings=GREEDY))
    "".join(s.ask("And then?", settings=GREEDY))
    "".join(s.ask("And then?", pooling_shape=(4, 6, 6), settings=GREEDY))
    "".join(s.ask("And then?", lora_alpha=20, settings=GREEDY))
    fresh.describe_view(s.video, (2, 3, 3)), fresh.token_norms(s.video, (8, 12, 12))
    s.set_video(video, 8)  # the UI calls this again on every slider move: a cache hit
    assert len(calls) == 1 and fresh.stats["videos_decoded"] == 1
    s.set_video(video, 12)  # a new number of frames is a new encoding
    assert len(calls) == 2 and fresh.stats["videos_decoded"] == 2
    assert len(s.turns) == 4  # same file: the chat is kept


def test_follow_up_reuses_prefix_and_matches_fresh_prefill(fresh, tiny_official, video):
    s = fresh.new_session()
    s.set_video(video, 8)
    "".join(s.ask("What happens?", settings=GREEDY))
    before = fresh.stats["prefill_tokens"]
    reused = "".join(s.ask("Who is there?", settings=GREEDY))
    new_tokens = fresh.stats["prefill_tokens"] - before
    assert fresh.stats["reused_tokens"] > 2304 and new_tokens < 40

    other = Engine.load(tiny_official, device="cpu", quantization="none")  # no cache at all
    t = other.new_session()
    t.set_video(video, 8)
    t.turns = list(s.turns[:-1])
    assert "".join(t.ask("Who is there?", settings=GREEDY)) == reused
    assert other.stats["reused_tokens"] == 0


def test_stop_mid_stream_keeps_session_consistent(fresh, tiny_official, video):
    s = fresh.new_session()
    s.set_video(video, 8)
    stream = s.ask("Describe it.", settings=GenerationSettings(max_new_tokens=30, min_new_tokens=30))
    got = next(stream) + next(stream)
    stream.close()
    assert s.turns[-1].stopped and s.turns[-1].answer == got.strip()
    follow = "".join(s.ask("Go on.", settings=GREEDY))
    # A session that never had a cache, given the same history, answers the same.
    other = Engine.load(tiny_official, device="cpu", quantization="none").new_session()
    other.set_video(video, 8)
    other.turns = list(s.turns[:-1])
    assert "".join(other.ask("Go on.", settings=GREEDY)) == follow


def test_each_session_keeps_its_own_alpha_and_video(fresh, video, tmp_path):
    v2 = write_video(tmp_path / "other.mp4", n_frames=20, width=96, height=64, pattern="colour")
    a, b = fresh.new_session(), fresh.new_session()
    a.set_video(video, 4)
    b.set_video(v2, 4)
    assert a.video.clip.width == 160 and b.video.clip.width == 96
    sa = a.ask("q", lora_alpha=0.0, settings=GREEDY)
    sb = b.ask("q", lora_alpha=32.0, settings=GREEDY)
    interleaved_a, interleaved_b = "", ""
    for pa, pb in zip(sa, sb):  # two users stream at once, steps interleave on the shared model
        interleaved_a, interleaved_b = interleaved_a + pa, interleaved_b + pb
    interleaved_a += "".join(sa)
    interleaved_b += "".join(sb)
    a2, b2 = fresh.new_session(), fresh.new_session()
    a2.set_video(video, 4)
    b2.set_video(v2, 4)
    assert "".join(a2.ask("q", lora_alpha=0.0, settings=GREEDY)) == interleaved_a
    assert "".join(b2.ask("q", lora_alpha=32.0, settings=GREEDY)) == interleaved_b


def test_sampling_is_seeded_and_settings_matter(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 4)
    sample = GenerationSettings(do_sample=True, temperature=1.5, top_p=0.95, max_new_tokens=12, min_new_tokens=12, seed=7)
    one = "".join(s.ask("q", settings=sample))
    s.clear()
    two = "".join(s.ask("q", settings=sample))
    s.clear()
    greedy = "".join(s.ask("q", settings=GenerationSettings(max_new_tokens=12, min_new_tokens=12)))
    assert one == two and one != greedy


def test_long_chat_drops_oldest_turns_and_says_so(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 16)  # 2304 visual tokens of 4096
    long_q = "please describe everything about the street and the people " * 12
    for _ in range(8):
        "".join(s.ask(long_q, settings=GenerationSettings(max_new_tokens=16, min_new_tokens=4)))
    assert s.notice and "oldest turn" in s.notice
    assert len(s.turns) == 8  # the history is kept for display; only the prompt leaves turns out


def test_bad_requests_raise_before_any_work(fresh, video):
    s = fresh.new_session()
    with pytest.raises(InputError, match="Upload a video"):
        s.ask("hello")
    s.set_video(video, 4)
    with pytest.raises(InputError, match="type a question"):
        s.ask("   ")
    with pytest.raises(InputError, match="limit is 4,000"):
        s.ask("x" * 100_000)
    with pytest.raises(InputError, match="pooling shape"):
        s.ask("q", pooling_shape=(4, 0, 12))
    with pytest.raises(InputError, match=r"^num_frames must be a whole number 1-32, got 64\.$"):
        s.set_video(video, 64)
    with pytest.raises(InputError, match=r"^temperature must be a number in \(0, 5\], got 0\.$"):
        GenerationSettings(temperature=0)
    assert s.turns == []


def test_feature_cache_is_bounded_in_bytes(tiny_official, tmp_path):
    # the official resize stores a 64x48 video's frames at 448x336 (0.45 MB each): 3.6-5.9 MB per entry
    eng = Engine.load(tiny_official, device="cpu", quantization="none", limits=Limits(feature_cache_mb=12))
    for i in range(6):
        eng.prepare_video(write_video(tmp_path / f"v{i}.mp4", n_frames=10, width=64, height=48, pattern="colour" if i % 2 else "counter"), 8 + i)
    assert eng.feature_cache.bytes <= 12 * 2**20 and len(eng.feature_cache) < 6


def test_kv_caches_share_a_byte_budget(tiny_official, video):
    eng = Engine.load(tiny_official, device="cpu", quantization="none", limits=Limits(kv_cache_mb=1))
    sessions = [eng.new_session() for _ in range(4)]
    for s in sessions:
        s.set_video(video, 4)
        "".join(s.ask("q", pooling_shape=(4, 12, 12), settings=GREEDY))
    assert eng.kv_caches.bytes <= 1 * 2**20 and 1 <= len(eng.kv_caches) < len(sessions)
    "".join(sessions[0].ask("again", pooling_shape=(4, 12, 12), settings=GREEDY))  # evicted: re-prefilled, still works
    assert len(sessions[0].turns) == 2


def test_chatml_checkpoint_stops_at_im_end(tiny_chatml, video):
    eng = Engine.load(tiny_chatml, device="cpu", quantization="none")
    assert eng.format.name == "chatml"
    assert eng.tokenizer.convert_tokens_to_ids("<|im_end|>") in eng.stop_ids
    s = eng.new_session()
    s.set_video(video, 4)
    text = "".join(s.ask("q", settings=GREEDY))
    assert "<|im" not in text


def test_set_lora_alpha_changes_strength_in_place(fresh):
    ids = [id(m) for m in fresh.model.modules()]
    fresh.loaded.set_lora_alpha(12.5)
    assert fresh.loaded.lora_alpha == 12.5 and ids == [id(m) for m in fresh.model.modules()]
    assert torch.is_tensor(next(fresh.model.parameters()))


def test_in_place_kv_cache_gives_the_same_logits_as_transformers_dynamic_cache():
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from pllava_demo.chat.kvcache import GrowingLayer, cache_nbytes, new_kv_cache

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100)).eval()
    ids = torch.randint(0, 100, (1, 600))  # crosses several growth steps of the buffers

    def run(cache):
        logits = [lm(input_ids=ids[:, :290], past_key_values=cache, use_cache=True).logits[0, -1]]
        for t in range(290, 600):
            logits.append(lm(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True).logits[0, -1])
        cache.crop(-50)  # prefix reuse: back up, then continue
        logits.append(lm(input_ids=ids[:, 550:600], past_key_values=cache, use_cache=True).logits[0, -1])
        return torch.stack(logits), cache.get_seq_length()

    with torch.inference_mode():
        want, n_want = run(DynamicCache())
        cache = new_kv_cache()
        got, n_got = run(cache)
    assert isinstance(cache.layers[0], GrowingLayer) and n_got == n_want == 600
    assert torch.equal(got, want)
    assert 600 * 2 * 2 * 2 * 16 * 4 <= cache_nbytes(cache) <= 1.5 * 600 * 2 * 2 * 2 * 16 * 4 + 2 * 2 * 2 * 256 * 16 * 4 * 2


def test_flipping_a_slider_back_reuses_the_earlier_cache(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 8)
    "".join(s.ask("What happens?", lora_alpha=4, settings=GREEDY))
    "".join(s.ask("What happens?", lora_alpha=20, settings=GREEDY))  # new alpha: a full prefill
    before = dict(fresh.stats)
    "".join(s.ask("And now?", lora_alpha=4, settings=GREEDY))  # back to 4: the alpha-4 cache is still there
    assert fresh.stats["reused_tokens"] - before["reused_tokens"] > 2304
    assert fresh.stats["prefill_tokens"] - before["prefill_tokens"] < 200
    for alpha in (8, 12, 16):  # a session keeps at most 3 caches
        "".join(s.ask("q", lora_alpha=alpha, settings=GREEDY))
    assert _kv_caches(s) == 3
    s.close()
    assert not _kv_caches(s)


def test_a_session_closed_mid_answer_keeps_nothing(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 4)
    stream = s.ask("q", settings=GenerationSettings(max_new_tokens=20, min_new_tokens=20))
    next(stream)
    s.close()  # the user's tab went away while the answer streamed
    stream.close()  # the server notices later and ends the stream
    assert s.turns == [] and not _kv_caches(s) and s.video is None
    s.set_video(video, 4)  # reopened: works as new
    assert "".join(s.ask("q", settings=GREEDY)) and len(s.turns) == 1


def test_alpha_chosen_at_load_stays_the_default(tiny_official, video):
    eng = Engine.load(tiny_official, device="cpu", quantization="none", lora_alpha=20)
    assert eng.default_alpha == 20.0 and eng.loaded.lora_alpha == 20.0
    s = eng.new_session()
    s.set_video(video, 4)
    "".join(s.ask("q", settings=GREEDY))
    assert eng.loaded.lora_alpha == 20.0  # a question that names no alpha keeps the load-time one
    with pytest.raises(InputError, match=r"^lora_alpha must be a number in \[0, 256\], got 'x'\.$"):
        s.ask("q", lora_alpha="x")
    with pytest.raises(InputError, match=r"^lora_alpha must be a number in \[0, 256\], got 300\.$"):
        s.ask("q", lora_alpha=300)


def test_new_video_mid_answer_does_not_inherit_the_old_answer(fresh, video, tmp_path):
    other = write_video(tmp_path / "second.mp4", n_frames=20, width=96, height=64, pattern="colour")
    s = fresh.new_session()
    s.set_video(video, 4)
    stream = s.ask("What is in the first video?", settings=GenerationSettings(max_new_tokens=20, min_new_tokens=20))
    next(stream)
    s.set_video(other, 4)  # the user switched video while the answer streamed
    "".join(stream)
    assert s.turns == [] and s.video.clip.width == 96


def test_a_follow_up_neither_pools_nor_embeds_the_video_again(fresh, video):
    s = fresh.new_session()
    s.set_video(video, 8)
    "".join(s.ask("What happens?", settings=GREEDY))
    pools = []
    real_pool = fresh.model.pool
    fresh.model.pool = lambda *a, **k: pools.append(1) or real_pool(*a, **k)
    try:
        "".join(s.ask("And then?", settings=GREEDY))  # the KV cache holds the video
        fresh.token_norms(s.video)  # the heat map at the same shape: remembered tokens
        assert pools == []
        "".join(s.ask("And then?", pooling_shape=(4, 3, 3), settings=GREEDY))  # a new shape pools once
        assert pools == [1]
    finally:
        fresh.model.pool = real_pool
