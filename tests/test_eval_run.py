"""`python -m pllava_demo eval` end to end on a generated MVBench-layout set (bounded and unbounded video
tasks, the frame-folder task, a clip asked twice), with tiny checkpoints on CPU.

Pinned here: a sweep over 3 alphas x 2 strategies writes a row per (question, setting) and decodes and
CLIP-encodes each clip once (the sweep's counters); the frames are the official ordinals; a model scripted
to answer "B) yes" after the prefill is scored by the official rule; rows decoded together in one batch
at different alphas equal the rows run alone; a run killed mid-way (SIGKILL) keeps its rows and the same
command finishes the rest without redoing any; open-ended rows are recorded unscored with a note, then
scored by a judge on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eval_data import write_mvbench
from legacy_tokenizer import build_legacy_tokenizer, make_legacy_tiny, script_answer
from PIL import Image
from release_layout import official_ids, write_release_tokenizer

from pllava_demo.chat.engine import Engine
from pllava_demo.cli import main
from pllava_demo.errors import InputError
from pllava_demo.eval.datasets import read_mc_jsonl, read_mvbench
from pllava_demo.eval.protocols import PROTOCOLS
from pllava_demo.eval.results import RowWriter, read_rows
from pllava_demo.eval.runner import Setting, Sweep, run_sweep
from pllava_demo.eval.sampling import official_indices
from pllava_demo.frames.strategies import PllavaPooling, make
from pllava_demo.network.checkpoint import load_pllava

REPO = Path(__file__).resolve().parents[1]
ALPHAS = [0.0, 4.0, 20.0]


@pytest.fixture(scope="module")
def mvbench(tmp_path_factory):
    return write_mvbench(tmp_path_factory.mktemp("mvbench") / "MVBench")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """The legacy-tokenizer tiny checkpoint, scripted to answer "B) yes" after MVBench's prefill "("."""
    ckpt = make_legacy_tiny(tmp_path_factory.mktemp("scripted"))
    write_release_tokenizer(ckpt, build_legacy_tokenizer(), bos="<s>", eos="</s>")
    prompt = PROTOCOLS["mvbench"].text("Question: q\nOptions:\n(A) yes\n(B) no")
    anchor = official_ids(ckpt, prompt)[-1]
    answer = official_ids(ckpt, "xB) yes")[3:]  # "B", ")", "▁yes" (after "▁", "x")
    script_answer(ckpt, anchor, answer)
    return ckpt


def _sweep(ckpt, items, out, strategies, alphas=ALPHAS, rows=8, frames=4):
    engine = Engine(load_pllava(ckpt, device="cpu", quantization="none"), batching=True, max_rows=rows)
    settings = [Setting(engine.check_alpha(a), engine.strategy(s)) for s in strategies for a in alphas]
    sweep = Sweep(engine, PROTOCOLS["mvbench"], settings, num_frames=frames)
    with RowWriter(out) as writer:
        stats = run_sweep(sweep, sweep.todo(items, writer), writer.write, workers=2)
    return engine, stats, read_rows(out)


def test_a_sweep_decodes_and_encodes_each_clip_once_and_scores_by_the_official_rule(mvbench, scripted, tmp_path):
    root, n_questions, n_clips = mvbench
    items = read_mvbench(root)
    assert len(items) == n_questions and len({i.clip_key for i in items}) == n_clips
    strategies = [PllavaPooling((4, 2, 2)), make("video-chatgpt")]
    engine, stats, rows = _sweep(scripted, items, tmp_path / "r.jsonl", strategies)

    assert len(rows) == n_questions * len(ALPHAS) * len(strategies)
    assert stats["clips_decoded"] == stats["clips_encoded"] == n_clips  # not once per setting
    assert stats["frames_encoded"] == 4 * n_clips and engine.stats["prefills"] == len(rows)
    assert {(r["settings"]["lora_alpha"], r["settings"]["strategy"]["name"]) for r in rows.values()} == {
        (a, s) for a in ALPHAS for s in ("pllava", "video-chatgpt")}
    for row in rows.values():
        assert "error" not in row, row
        assert row["preds"] == ["(B) yes"]
        assert row["correct"] is row["answer"].startswith("(B)")
        assert row["prompts"][0] == PROTOCOLS["mvbench"].text(row["questions"][0])
        assert row["prompt_ids_sha256"][0] and row["frames_official"] is True
        if row["task"] == "Action Sequence":  # bounded: the official ordinals of the 30-frame 10 fps clip
            assert row["frame_indices"] == official_indices(4, 30, 10.0, tuple(row["bound"]))
        if row["task"] == "Episodic Reasoning":  # 12 jpgs read at 3 fps from 00001.jpg inside 0.5-3.5 s
            assert row["frame_indices"] == official_indices(4, 12, 0.0, (0.5, 3.5), "frame") == [3, 5, 7, 9]
    assert {i.answer[:3] for i in items} >= {"(A)", "(B)"}  # both outcomes are exercised


def test_rows_batched_at_different_alphas_equal_rows_run_alone(mvbench, tiny_official, tmp_path):
    items = read_mvbench(mvbench[0], ["Action Sequence", "Object Existence"])
    _, _, together = _sweep(tiny_official, items, tmp_path / "together.jsonl", [PllavaPooling((4, 2, 2))], rows=8)
    for alpha in ALPHAS:
        _, _, alone = _sweep(tiny_official, items, tmp_path / f"alone{alpha}.jsonl", [PllavaPooling((4, 2, 2))],
                             alphas=[alpha], rows=1)
        for key, row in alone.items():
            assert together[key]["answer_ids"] == row["answer_ids"] and together[key]["preds"] == row["preds"]
    assert len({tuple(r["answer_ids"][0]) for r in together.values()}) > 1  # a random model: answers differ


def _cli(ckpt, root, out, *extra):
    return [sys.executable, "-m", "pllava_demo", "eval", "mvbench", "--data", str(root), "--out", str(out),
            "--model", str(ckpt), "--device", "cpu", "--quantization", "none", "--frames", "4", "--pooling", "4,2,2",
            "--lora-alpha", ",".join(f"{a:g}" for a in ALPHAS), *extra]


def test_a_killed_run_resumes_without_redoing_rows(mvbench, tiny_official, tmp_path):
    root, n_questions, _ = mvbench
    out = tmp_path / "killed.jsonl"
    total = n_questions * len(ALPHAS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(_cli(tiny_official, root, out, "--batch-size", "1", "--workers", "1"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # wait for the product's own event: three rows on disk
        while proc.poll() is None and (not out.exists() or out.read_text().count("\n") < 3):
            threading.Event().wait(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = read_rows(out)
    assert 3 <= len(before) < total, "the run was not stopped mid-way"

    done = subprocess.run(_cli(tiny_official, root, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{total - len(before)} row(s) to run, {len(before)} already in" in done.stderr
    after = read_rows(out)
    assert len(after) == total
    assert all(after[k] == row for k, row in before.items())  # kept, not redone
    lines = [line for line in out.read_text().splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith("{") and line.endswith("}")]) == total
    stem = tmp_path / "killed"
    summary = json.loads(Path(f"{stem}.summary.json").read_text())
    assert [s["n"] for s in summary["settings"]] == [n_questions] * len(ALPHAS)
    assert "Avg" in Path(f"{stem}.summary.md").read_text()
    with Image.open(f"{stem}.alpha.png") as im:
        assert im.size == (900, 560)
        assert sum(1 for p in im.convert("L").getdata() if p < 128) > 500  # axes, lines and labels are drawn
    again = subprocess.run(_cli(tiny_official, root, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"0 row(s) to run, {total} already in" in again.stderr


@contextmanager
def fixed_judge(reply: str):
    """An OpenAI-compatible endpoint on 127.0.0.1 answering every chat completion with `reply`; yields
    (base URL, list of the requests it got)."""
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            out = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", got
    finally:
        server.shutdown()
        server.server_close()


def test_open_ended_rows_are_kept_unscored_then_judged(tiny_official, tmp_path, capsys):
    from videos import write_video

    write_video(tmp_path / "a.mp4", n_frames=12, width=64, height=48)
    data = tmp_path / "open.jsonl"
    data.write_text("\n".join(json.dumps({"video": "a.mp4", "question": q, "answer": "a dog", "task": "ActivityNet"})
                              for q in ("What is shown?", "Who runs?")))
    out = tmp_path / "open_rows.jsonl"
    args = ["eval", "open", "--data", str(data), "--out", str(out), "--model", str(tiny_official), "--device", "cpu",
            "--frames", "4", "--pooling", "4,2,2", "--lora-alpha", "0,4"]
    assert main(args + ["--limit", "1"]) == 0  # one question, under both alphas
    assert len(read_rows(out)) == 2
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "4 open-ended answer(s) are recorded but unscored" in printed.out
    rows = read_rows(out)
    assert len(rows) == 4 and all(r["settings"]["protocol"] == "videoqa" and "judge" not in r for r in rows.values())
    with fixed_judge("{'pred': 'yes', 'score': 4}") as (url, got):
        assert main(args + ["--judge-url", url, "--judge-model", "j"]) == 0
    rows = read_rows(out)
    assert len(got) == 4 and all(g["model"] == "j" for g in got) and all(r["judge"]["correct"] and r["judge"]["scores"] == {"score": 4} for r in rows.values())
    summary = json.loads((tmp_path / "open_rows.summary.json").read_text())
    assert summary["metric"] == "judge score (0-5)" and all(s["avg"] == 4.0 for s in summary["settings"])
    assert all(s["judge_acc"] == 100.0 for s in summary["settings"])


def test_bad_data_gets_one_clear_sentence(tmp_path):
    with pytest.raises(InputError, match="no json/ folder"):
        read_mvbench(tmp_path)
    (tmp_path / "mc.jsonl").write_text(json.dumps({"video": "v.mp4", "question": "q", "options": ["a", "b"], "answer": "c"}))
    with pytest.raises(InputError, match="line 1: the answer 'c' is not one of the options"):
        read_mc_jsonl(tmp_path / "mc.jsonl")
    (tmp_path / "mc.jsonl").write_text(json.dumps({"video": "v.mp4", "question": "q", "options": ["a", "b"], "answer": "B",
                                                   "start": 1}))
    with pytest.raises(InputError, match="both 'start' and 'end'"):
        read_mc_jsonl(tmp_path / "mc.jsonl")
    (tmp_path / "mc.jsonl").write_text(json.dumps({"video": "v.mp4", "question": "q", "options": ["a", "b"], "answer": 1}))
    assert read_mc_jsonl(tmp_path / "mc.jsonl")[0].answer == "(B) b"
    assert main(["eval", "mc", "--data", str(tmp_path / "mc.jsonl"), "--lora-alpha", "4,x"]) == 2


def test_vcg_layout_with_its_consistency_task(tiny_official, tmp_path, capsys):
    from videos import write_video

    root = tmp_path / "VCGBench"
    qa = root / "Zero_Shot_QA" / "Benchmarking_QA"
    qa.mkdir(parents=True)
    (root / "Videos" / "Benchmarking").mkdir(parents=True)
    write_video(root / "Videos" / "Benchmarking" / "v_a.mp4", n_frames=12, width=64, height=48)
    (qa / "generic_qa.json").write_text(json.dumps([{"video_name": "v_a", "Q": "What happens?", "A": "A dog runs."}]))
    (qa / "consistency_qa.json").write_text(json.dumps([{"video_name": "v_a", "Q1": "Who runs?", "Q2": "Which animal runs?",
                                                         "A": "A dog."}]))
    out = tmp_path / "vcg.jsonl"
    with fixed_judge("{'score': 4}") as (url, got):
        assert main(["eval", "open", "--data", str(root), "--out", str(out), "--model", str(tiny_official), "--device", "cpu",
                     "--frames", "4", "--pooling", "4,2,2", "--judge-url", url]) == 0
    assert len(got) == 4  # generic: three scores; consistency: one
    rows = {r["task"]: r for r in read_rows(out).values()}
    assert rows["consistency_qa"]["questions"] == ["Who runs?", "Which animal runs?"]
    assert len(rows["consistency_qa"]["preds"]) == len(rows["consistency_qa"]["prompts"]) == 2
    assert rows["consistency_qa"]["prompts"][1] == PROTOCOLS["vcg"].text("Which animal runs?")
    assert rows["generic_qa"]["settings"]["protocol"] == "vcg"
    assert rows["generic_qa"]["judge"]["scores"] == {"context": 4, "detailed_orientation": 4, "correctness": 4}
    summary = json.loads((tmp_path / "vcg.summary.json").read_text())["settings"][0]
    assert summary["tasks"] == {"consistency": 4.0, "context": 4.0, "correctness": 4.0, "detailed_orientation": 4.0}
    assert summary["judge_acc"] == 100.0 and "Acc %" in capsys.readouterr().out


def test_a_question_too_long_for_the_context_is_an_error_row(tiny_official, tmp_path):
    from videos import write_video

    write_video(tmp_path / "a.mp4", n_frames=12, width=64, height=48)
    long = "Why " * 5000
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps({"video": "a.mp4", "question": q, "options": ["x", "y"],
                                                              "answer": "y"}) for q in ("Short?", long)))
    _, stats, rows = _sweep(tiny_official, read_mc_jsonl(tmp_path / "set.jsonl"), tmp_path / "r.jsonl",
                            [PllavaPooling((4, 2, 2))], alphas=[4.0])
    short, too_long = sorted(rows.values(), key=lambda r: len(r["questions"][0]))
    assert "error" not in short and short["preds"] and stats["clips_decoded"] == 1
    assert "answer tokens" in too_long["error"] and "preds" not in too_long
