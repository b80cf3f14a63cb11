"""The official evaluation protocols, restated here independently from magic-research/PLLaVA @6f49fd2
(tasks/eval/eval_utils.py `Conversation`, tasks/eval/mvbench, tasks/eval/model_utils.pllava_answer), and
checked against the eval room's own code:

- the MVBench / VCG / VideoQA prompts give the official token ids with the released LLaMA tokenizer
  layout (tokenizer.json's own pipeline, BOS first), prefill included;
- the answer rule agrees with the official check_ans on a table of real answer strings;
- the answer cut, the frame index rule (bounds, GIF at 25 fps, frame folders at 3 fps from 1) and the
  keyword stop agree with the official code;
- the judge client sends the official prompts to a real HTTP server on 127.0.0.1 and reads its replies.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from legacy_tokenizer import build_legacy_tokenizer, make_legacy_tiny
from release_layout import official_ids, write_release_tokenizer

from pllava_demo.chat.tokens import encode_prompt
from pllava_demo.errors import InputError, VideoError
from pllava_demo.eval.judge import Judge, VCG_PROMPTS
from pllava_demo.eval.matching import official_match
from pllava_demo.eval.protocols import PROTOCOLS, SYSTEM_MVBENCH, SYSTEM_VCG, VIDEOQA_PRE, mvbench_question, protocol_for
from pllava_demo.eval.runner import stop_at_keywords
from pllava_demo.eval.sampling import gif_order, official_indices
from pllava_demo.network.checkpoint import load_pllava


# -- the official code, restated ------------------------------------------------------------------
def official_prompt(system, roles, sep, mm_token, mm_alone, question, pre=None, post=None, answer_prompt=None):
    """Conversation.user_query(question, pre, post, is_mm=True), assistant_response(answer_prompt), get_prompt()."""
    messages = []
    if post is not None:
        question = f"{question} {post}"
    if pre is not None:
        question = f"{pre} {question}"
    mm_str = 1 * mm_token[:-1] + mm_token[-1]
    if mm_alone:
        messages.append([roles[0], mm_str])
    elif mm_token not in question:
        question = f"{mm_str} {question}"
    messages.append([roles[0], question])
    if answer_prompt is not None:
        messages.append([roles[1], answer_prompt])
    seps = dict(zip(roles, sep))
    ret = system + seps[roles[0]] if system != "" else ""
    for i, (role, message) in enumerate(messages):
        if i + 1 == len(messages):
            ret += role + message + seps[role] + roles[-1] if role != roles[-1] else role + message
        else:
            ret += role + message + seps[role]
    return ret


def official_qa_template(data):
    question = f"Question: {data['question']}\n"
    question += "Options:\n"
    answer = data["answer"]
    answer_idx = -1
    for idx, c in enumerate(data["candidates"]):
        question += f"({chr(ord('A') + idx)}) {c}\n"
        if c == answer:
            answer_idx = idx
    return question.rstrip(), f"({chr(ord('A') + answer_idx)}) {answer}"


def official_check_ans(pred, gt):
    flag = False
    pred_list = pred.lower().split(" ")
    pred_option = pred_list[0]
    gt_list = gt.lower().split(" ")
    gt_option = gt_list[0]
    if not any([c in pred_option for c in "abcdefgABCDEFG"]):
        pass
    elif pred_option.replace(".", "") in gt_option:
        flag = True
    elif gt_option in pred_option:
        flag = True
    return flag


def official_cut(output_text, split_tag, ending, answer_prompt=None, return_prompt=None, strip_after=False):
    output_text = output_text.split(split_tag)[-1]
    output_text = output_text.removesuffix(ending).strip()
    if answer_prompt is not None:
        output_text = "".join(output_text.split(answer_prompt.strip("\n"))[1:])
        if strip_after:
            output_text = output_text.strip()
    if return_prompt is not None:
        output_text = return_prompt + output_text
    return output_text


def official_get_index(num_segments, bound, fps, max_frame, first_idx=0):
    start, end = bound if bound else (-100000, 100000)
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return np.array([int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)])


VICUNA = dict(roles=("USER: ", "ASSISTANT:"), sep=[" ", "</s>"], mm_token="<image>\n")
QUESTIONS = [
    {"question": "What is the person doing?", "candidates": ["Running.", "Sitting down ", "café 猫"], "answer": "Sitting down "},
    {"question": "  Is the ball  red?", "candidates": ["yes", "no"], "answer": "no"},
]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    ckpt = make_legacy_tiny(tmp_path_factory.mktemp("eval_release"))
    write_release_tokenizer(ckpt, build_legacy_tokenizer(), bos="<s>", eos="</s>")
    return ckpt, load_pllava(ckpt, device="cpu", quantization="none").tokenizer


@pytest.mark.parametrize("data", QUESTIONS)
def test_mvbench_prompt_is_the_official_template_token_for_token(release, data):
    ckpt, tok = release
    question, answer = official_qa_template(data)
    ours_q, ours_a = mvbench_question(data["question"], data["candidates"], data["answer"])
    assert (ours_q, ours_a) == (question, answer)
    expected = official_prompt(SYSTEM_MVBENCH, **VICUNA, mm_alone=True, question=question,
                               post="\nOnly give the best option.", answer_prompt="Best option:(")
    mvbench = PROTOCOLS["mvbench"]
    assert mvbench.text(question) == expected
    # the four places one space is easy to get wrong
    assert ".\n USER: <image>\n USER: Question:" in expected and " \nOnly give the best option. ASSISTANT:Best option:(" in expected
    ids = encode_prompt(tok, mvbench.parts(question))
    assert ids == official_ids(ckpt, expected)
    assert ids[0] == 1 and ids.count(tok.convert_tokens_to_ids("<image>")) == 1
    assert tok.decode(ids[-3:]).endswith(":(")  # the prefill is in the ids: the model's first token follows "("


@pytest.mark.parametrize("question", ["What happens after the man opens the door?", "Describe  the video. <image>"])
def test_vcg_and_videoqa_prompts_are_the_official_templates(release, question):
    ckpt, tok = release
    vcg = official_prompt(SYSTEM_VCG, **VICUNA, mm_alone=True, question=question)
    qa = official_prompt("", **VICUNA, mm_alone=False, question=question, pre=VIDEOQA_PRE, post="\n",
                         answer_prompt="\nAnswer: In the video,")
    for name, expected in (("vcg", vcg), ("videoqa", qa)):
        assert PROTOCOLS[name].text(question) == expected
        if "<image>" not in question:  # a typed "<image>" stays text in ours; the official makes it a token
            assert encode_prompt(tok, PROTOCOLS[name].parts(question)) == official_ids(ckpt, expected)
    assert PROTOCOLS["vcg"].max_new_tokens == PROTOCOLS["mvbench"].max_new_tokens == 100


def test_chatml_templates_follow_the_llavanext_ones():
    roles = ("<|im_start|>user\n", "<|im_start|>assistant\n")
    sep = ["<|im_end|>\n", "<|im_end|>\n"]
    q = "Question: Why?\nOptions:\n(A) yes\n(B) no"
    assert protocol_for("mvbench", "chatml").text(q) == official_prompt(
        SYSTEM_VCG, roles, sep, "<image>\n", True, q, post="\nOnly give the best option.", answer_prompt="Best option:(")
    assert protocol_for("videoqa", "chatml").text("Why?") == official_prompt(
        "<|im_start|>system\nAnswer the question.", roles, sep, "<image>\n", False, "Why?", pre=VIDEOQA_PRE, post="\n",
        answer_prompt="\nAnswer: In the video,")
    with pytest.raises(InputError, match="mvbench, vcg, videoqa"):
        protocol_for("nextqa", "vicuna")


# (prediction as the official script records it, right option) -- real answer shapes
ANSWERS = [
    ("(A) yes", "(A) yes"), ("(A) yes", "(B) no"), ("(B) no", "(B) no"), ("(b) no", "(B) no"), ("A.", "(A) yes"),
    ("A", "(A) yes"), ("a.", "(A) yes"), ("B", "(A) yes"), ("(C)", "(C) a red ball"), ("(C", "(C) a red ball"),
    ("C)", "(C) a red ball"), ("(Best option:(B) no", "(B) no"), ("Best option:(B", "(B) no"), ("(B)no", "(B) no"),
    ("(B) no.", "(B) no"), (" (B) no", "(B) no"), ("", "(A) yes"), ("(", "(A) yes"), ("()", "(A) yes"),
    ("(E) stray text here", "(E) five"), ("(A)(B)", "(B) no"), ("(D)", "(A) yes"), ("The answer is (A)", "(A) yes"),
    ("(g)", "(G) seven"), ("(H) eight", "(H) eight"), ("a", "(B) abc"), ("(A),", "(A) yes"), ("A.B", "(A) yes"),
    ("(A)\nyes", "(A) yes"), ("(B\n", "(B) no"),
]


@pytest.mark.parametrize("pred, gt", ANSWERS)
def test_the_answer_rule_agrees_with_check_ans(pred, gt):
    assert official_match(pred, gt) == official_check_ans(pred, gt)


def test_the_answer_rule_table_pins_the_official_quirks():
    got = {(p, g): official_match(p, g) for p, g in ANSWERS}
    assert got[("(A) yes", "(A) yes")] and got[("A.", "(A) yes")] and got[("(b) no", "(B) no")] and got[("C)", "(C) a red ball")]
    assert not got[("Best option:(B", "(B) no")] and not got[(" (B) no", "(B) no")] and not got[("", "(A) yes")]
    assert not got[("(H) eight", "(H) eight")]  # only a-g count as option letters (official)
    assert got[("The answer is (A)", "(A) yes")] is False and got[("a", "(B) abc")] is False


@pytest.mark.parametrize("generated", ["B) no</s>", "B) no", " A) yes", "B", "Best option:(C) x", "A) ASSISTANT: B"])
def test_the_answer_cut_is_the_official_one(generated):
    prompt = PROTOCOLS["mvbench"].text("Question: q?\nOptions:\n(A) yes\n(B) no").replace("<image>\n", "\n")
    decoded = prompt + generated  # the decoded prompt + answer, special tokens skipped
    assert PROTOCOLS["mvbench"].cut(decoded) == official_cut(decoded, "ASSISTANT:", "</s>", "Best option:(", "(")
    qa = PROTOCOLS["videoqa"].text("why?").replace("<image>\n", "") + " " + generated
    assert PROTOCOLS["videoqa"].cut(qa) == official_cut(qa, "ASSISTANT:", "</s>", "\nAnswer: In the video,", None, True)
    assert PROTOCOLS["vcg"].cut(qa) == official_cut(qa, "ASSISTANT:", "</s>")


def test_frame_indices_follow_get_index():
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 600))
        fps = float(rng.choice([3.0, 10.0, 24.0, 25.0, 29.97, 30.0]))
        t = int(rng.choice([1, 4, 8, 16, 32]))
        bound = None if rng.random() < 0.3 else tuple(sorted(rng.uniform(0, n / fps + 2, 2).round(2)))
        assert official_indices(t, n, fps, bound) == official_get_index(t, bound, fps, n - 1).tolist()
        assert official_indices(t, n, 0.0, bound, "gif") == official_get_index(t, bound, 25, n - 1).tolist()
        assert official_indices(t, n, 0.0, bound, "frame") == official_get_index(t, bound, 3, n, first_idx=1).tolist()


def test_short_gifs_repeat_the_whole_list_as_read_gif_does():
    idx = official_indices(16, 5, 0.0, None, "gif")  # duplicates: 5 frames for 16 slots
    picked = [i for i in range(5) if i in idx]  # read_gif keeps each picked frame once, in order
    expected = ([f for _ in range(16 // len(picked) + 1) for f in picked])[:16]
    assert gif_order(idx, 16) == expected and gif_order(list(range(0, 32, 2)), 16) == list(range(0, 32, 2))


def test_keyword_stop_needs_every_keyword(release):
    _, tok = release
    ids = tok("The dog runs. ### and then USER asks", add_special_tokens=False).input_ids
    cut = stop_at_keywords(tok, ids, ("###", "USER"))
    text = tok.decode(cut, skip_special_tokens=True)
    assert "###" in text and "USER" in text and "asks" not in text
    assert stop_at_keywords(tok, ids, ("###", "never")) == ids


# -- the judge over real HTTP ---------------------------------------------------------------------
class _Judge(BaseHTTPRequestHandler):
    replies: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": type(self).replies.pop(0)}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture()
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.replies, _Judge.seen = [], []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_the_judge_sends_the_official_prompts_and_reads_the_replies(judge_server):
    judge = Judge(judge_server, "judge-x", api_key="k")
    _Judge.replies = ["{'score': 4}", "{'score': 2}", "not a dict", "{'pred': 'yes', 'score': 5}", "{'score': 5}"]
    row = {"task": "generic_qa", "questions": ["What?"], "preds": ["A dog."], "answer": "A dog runs."}
    out = judge.score_row(row)
    assert out["scores"] == {"context": 4, "detailed_orientation": 2, "correctness": 0}
    assert out["unreadable"] == ["correctness"] and out["correct"] is False
    path, auth, body = _Judge.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k" and body["model"] == "judge-x"
    assert body["messages"][0]["content"] == VCG_PROMPTS["context"]["system"]
    assert "Question: What?\nCorrect Answer: A dog runs.\nPredicted Answer: A dog.\n\n" in body["messages"][1]["content"]
    assert body["messages"][1]["content"].endswith("{'score': 4.8}.")
    qa = judge.score_row({"task": "ActivityNet", "questions": ["Is it red?"], "preds": ["yes"], "answer": "yes"})
    assert qa["correct"] is True and qa["scores"] == {"score": 5}
    cons = judge.score_row({"task": "consistency_qa", "questions": ["Q1?", "Q2?"], "preds": ["a", "b"], "answer": "c"})
    assert cons["scores"] == {"consistency": 5}
    # as the official run records them (questions swapped after the second answer): Question 1 is Q2
    assert "Question 1: Q2?\nQuestion 2: Q1?\nCorrect Answer: c\nPredicted Answer to Question 1: a\n" in \
        _Judge.seen[-1][2]["messages"][1]["content"]
    assert judge.score_row({"task": "temporal_qa", "questions": ["q"], "preds": [""], "answer": "a"})["scores"] == {"temporal": 0}


def test_an_unreachable_judge_is_one_clear_error():
    with pytest.raises(InputError, match="did not answer"):
        Judge("http://127.0.0.1:9/v1", timeout=2).score_row({"task": "MSVD_QA", "questions": ["q"], "preds": ["p"], "answer": "a"})
    with pytest.raises(InputError, match="http"):
        Judge("127.0.0.1:8000")


# -- the frames read ------------------------------------------------------------------------------
def test_gif_and_bounded_video_frames_are_the_official_ones(tmp_path):
    from PIL import Image
    from videos import counter_frame, frame_index, write_video

    from pllava_demo.eval.media import load_clip

    frames = [Image.fromarray(counter_frame(k, 96, 64)) for k in range(7)]
    frames[0].save(tmp_path / "short.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    clip = load_clip(tmp_path / "short.gif", 16, data_type="gif")
    read = [frame_index(f) for f in clip.frames]
    assert read == list(clip.indices) == gif_order(official_indices(16, 7, 0.0, None, "gif"), 16)
    assert read[:7] == list(range(7)) and read[7:14] == list(range(7))  # the list repeated, not frames doubled

    write_video(tmp_path / "v.mp4", n_frames=60, fps=10, width=96, height=64)
    for bound in [(0.4, 2.2), (1.25, 5.95), (3.0, 9.0), (0.0, 60.0)]:
        clip = load_clip(tmp_path / "v.mp4", 8, bound=bound)
        assert [frame_index(f) for f in clip.frames] == list(clip.indices) == official_indices(8, 60, 10.0, bound)
        assert clip.exact
    with pytest.raises(VideoError, match="outside"):
        load_clip(tmp_path / "v.mp4", 8, bound=(7.0, 9.0))
