"""The batch captioner (`python -m pllava_demo caption`): real videos written with PyAV, a corrupt
file among them, the tiny random checkpoint in float32 on CPU.

Pinned here: one JSON line per video with its fields; a bad video is recorded with its error and
the run goes on; reruns skip what is written; a run stopped with SIGINT keeps every written line
and the rerun completes; batched greedy captions (prompts of different lengths, each prefilled on its own cache) are
identical to one-by-one captions and to the chat engine's answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pllava_demo.caption.captioner import CaptionOptions, Captioner, run_captions
from pllava_demo.caption.records import CaptionJob, CaptionWriter, discover, path_key
from pllava_demo.cli import main
from pllava_demo.config import GenerationSettings
from pllava_demo.errors import InputError
from pllava_demo.chat.prompt import RECAPTION_PROMPT, RECAPTION_SYSTEM

from videos import write_video

REPO = Path(__file__).resolve().parents[1]
N_GOOD = 5


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for i in range(N_GOOD):
        sub = d / ("nested" if i == 4 else "")
        sub.mkdir(exist_ok=True)
        write_video(sub / f"clip{i}.mp4", n_frames=20 + 7 * i, width=160 + 48 * i, height=120 + 16 * i, pattern="colour")
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))  # mp4 header, then noise
    (d / "notes.txt").write_text("not a video: discovery must skip it")
    return d


@pytest.fixture(scope="module")
def loaded(tiny_official):
    from pllava_demo.network.checkpoint import load_pllava

    model = load_pllava(tiny_official, device="cpu", quantization="none")
    assert model.dtype == torch.float32, "exact batched-vs-single equality is pinned in float32"
    return model


def _cli(tiny, video_dir, out, *extra) -> int:
    return main(["caption", str(video_dir), "--out", str(out), "--model", str(tiny), "--device", "cpu",
                 "--quantization", "none", "--pooling", "4,6,6", "--frames", "8", "--max-new-tokens", "12",
                 "--min-new-tokens", "12", *extra])


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


# -- discovery and the writer ---------------------------------------------------------------------
def test_discover_folder_and_lists(video_dir, tmp_path):
    jobs = discover(video_dir)
    names = [Path(j.path).name for j in jobs]
    assert sorted(names) == sorted([f"clip{i}.mp4" for i in range(N_GOOD)] + ["broken.mp4"])
    assert "notes.txt" not in names

    (tmp_path / "list.txt").write_text(f"# a comment\n{video_dir / 'clip0.mp4'}\n\nrel/clip9.mp4\n")
    assert [j.path for j in discover(tmp_path / "list.txt")] == [str(video_dir / "clip0.mp4"), str(tmp_path / "rel/clip9.mp4")]
    (tmp_path / "list.csv").write_text(f"video,prompt\n{video_dir / 'clip1.mp4'},Describe it.\nclip2.mp4,\n")
    assert discover(tmp_path / "list.csv") == [CaptionJob(str(video_dir / "clip1.mp4"), "Describe it."),
                                               CaptionJob(str(tmp_path / "clip2.mp4"))]
    (tmp_path / "list.jsonl").write_text('{"path": "a.mp4", "prompt": "Q?"}\n\n{"video": "b.webm"}\n')
    assert discover(tmp_path / "list.jsonl") == [CaptionJob(str(tmp_path / "a.mp4"), "Q?"), CaptionJob(str(tmp_path / "b.webm"))]

    (tmp_path / "bad.csv").write_text("name\nx.mp4\n")
    with pytest.raises(InputError, match="path, video"):
        discover(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="neither a folder nor a list"):
        discover(tmp_path / "missing")


def test_writer_skips_done_and_cuts_a_half_written_line(tmp_path):
    out = tmp_path / "sub" / "caps.jsonl"
    with CaptionWriter(out) as w:
        w.write({"path": "a.mp4", "caption": "one"})
        w.write({"path": "b.mp4", "error": "corrupt", "error_type": "VideoError"})
    with open(out, "ab") as f:
        f.write(b'{"path": "c.mp4", "capt')  # a run killed in the middle of a line
    with CaptionWriter(out) as w:
        assert w.is_done("a.mp4") and w.is_done(os.path.abspath("b.mp4")) and not w.is_done("c.mp4")
        assert w.errors == {path_key("b.mp4")}
        w.write({"path": "c.mp4", "caption": "three"})
    assert [r["path"] for r in _records(out)] == ["a.mp4", "b.mp4", "c.mp4"]  # every line parses
    with CaptionWriter(out, retry_errors=True) as w:
        assert w.is_done("a.mp4") and not w.is_done("b.mp4")


# -- the command ----------------------------------------------------------------------------------
def test_cli_writes_one_line_per_video_records_errors_and_resumes(tiny_official, video_dir, tmp_path, capsys):
    out = tmp_path / "captions.jsonl"
    assert _cli(tiny_official, video_dir, out, "--batch-size", "2", "--workers", "2", "--limit", "3") == 0
    assert len(_records(out)) == 3
    assert _cli(tiny_official, video_dir, out, "--batch-size", "2", "--workers", "2") == 0
    err = capsys.readouterr().err
    assert "3 already in" in err and "skipped" in err and "broken.mp4" in err

    records = _records(out)
    by_path = {r["path"]: r for r in records}
    assert len(records) == len(by_path) == N_GOOD + 1, "one line per video, none twice"
    bad = by_path[str(video_dir / "broken.mp4")]
    assert bad["error_type"] == "VideoError" and "broken.mp4" in bad["error"] and "caption" not in bad
    for path, r in by_path.items():
        if r is bad:
            continue
        assert isinstance(r["caption"], str) and r["caption"]
        assert r["model"] == str(tiny_official)
        assert r["settings"]["prompt"] == "official-recaption" and r["settings"]["pooling_shape"] == [4, 6, 6]
        assert r["settings"]["frames"] == 8 and r["settings"]["min_new_tokens"] == 12 and r["settings"]["do_sample"] is False
        assert len(r["timestamps"]) == 8 and r["timestamps"] == sorted(r["timestamps"])
        assert r["seconds"] > 0 and r["duration"] > 0

    before = out.read_bytes()
    assert _cli(tiny_official, video_dir, out) == 0
    assert out.read_bytes() == before, "a complete output is left as it is"
    assert "0 video(s) to caption" in capsys.readouterr().err


def test_sigint_keeps_written_lines_and_rerun_completes(tiny_official, video_dir, tmp_path):
    out = tmp_path / "captions.jsonl"
    cmd = [sys.executable, "-m", "pllava_demo", "caption", str(video_dir), "--out", str(out), "--model",
           str(tiny_official), "--device", "cpu", "--quantization", "none", "--frames", "8",
           "--max-new-tokens", "40", "--min-new-tokens", "40", "--batch-size", "1", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    # the child takes SIGINT as a terminal's Ctrl-C whatever this runner's own disposition is (one
    # inherited as ignored would let the run finish: rc 0, seen in two background clean-clone runs)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    first = _records(out)  # every line is whole
    assert 1 <= len(first) < N_GOOD + 1

    assert main(cmd[3:]) == 0
    records = _records(out)
    assert records[: len(first)] == first, "nothing already written is touched"
    assert sorted(r["path"] for r in records) == sorted(j.path for j in discover(video_dir))


# -- batching -------------------------------------------------------------------------------------
def test_batched_greedy_captions_equal_one_by_one_and_the_chat_engine(loaded, video_dir):
    settings = GenerationSettings(max_new_tokens=20, min_new_tokens=20)
    captioner = Captioner(loaded, CaptionOptions(settings=settings))
    jobs = discover(video_dir)
    # different prompt lengths per video, so the rows really decode at different positions
    prompts = [None, "what is happening in this video ?", None, "describe the background , characters and actions .", None, "yes"]
    jobs = [CaptionJob(j.path, p) for j, p in zip(jobs, prompts)]
    lengths = {len(captioner._prompt_ids(p or RECAPTION_PROMPT)[0]) for p in prompts}
    assert len(lengths) >= 3

    def run(batch_size, workers):
        records = []
        run_captions(captioner, jobs, records.append, batch_size=batch_size, workers=workers)
        return {r["path"]: r.get("caption", r.get("error")) for r in records}

    single, batched = run(1, 0), run(4, 2)
    assert batched == single
    assert sum(1 for c in single.values() if c and "broken" not in c) == N_GOOD
    assert len(set(single.values())) > 2, "captions depend on the video and prompt"

    # one by one here is also what the chat engine answers for the same video and prompt
    from pllava_demo.chat.engine import Engine

    session = Engine(loaded).new_session(RECAPTION_SYSTEM)
    path = next(j.path for j, p in zip(jobs, prompts) if p is None and "broken" not in j.path)
    session.set_video(path, 16)
    assert "".join(session.ask(RECAPTION_PROMPT, settings=settings)) == single[path]


def test_batched_sampling_with_a_seed_does_not_depend_on_the_batch(loaded, video_dir):
    settings = GenerationSettings(do_sample=True, temperature=1.0, top_p=0.95, seed=7, max_new_tokens=12,
                                  min_new_tokens=12, repetition_penalty=1.2)
    captioner = Captioner(loaded, CaptionOptions(settings=settings, pooling_shape=(4, 6, 6), num_frames=8))
    jobs = [j for j in discover(video_dir) if "broken" not in j.path][:3]
    one, three = [], []
    run_captions(captioner, jobs, one.append, batch_size=1, workers=0)
    run_captions(captioner, jobs, three.append, batch_size=3, workers=1)
    assert [r["caption"] for r in one] == [r["caption"] for r in three]


def test_bad_options_are_refused(loaded):
    with pytest.raises(InputError, match="prompt is empty"):
        CaptionOptions(prompt="  ")
    with pytest.raises(InputError, match="batch-size"):
        run_captions(Captioner(loaded), [], lambda r: None, batch_size=0)


def test_left_padding_leaves_every_rows_logits_as_alone(loaded, video_dir):
    """Stronger than equal text: every step's logits of each row match its one-row run (float32),
    so pads neither shift positions nor leak into attention."""
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    captioner = Captioner(loaded, CaptionOptions(settings=settings, pooling_shape=(4, 6, 6), num_frames=8))
    paths = [j.path for j in discover(video_dir) if "broken" not in j.path][:3]
    jobs = [CaptionJob(paths[0], "yes"), CaptionJob(paths[1]), CaptionJob(paths[2], "what is happening in this video ?")]
    items = [captioner.prepare(j) for j in jobs]

    def logits_of(batch):
        steps = []
        with torch.inference_mode():
            captioner._generate(batch, on_logits=lambda i, x: steps.append(x.float().clone()))
        return torch.stack(steps, dim=1)  # (B, steps, V)

    together = logits_of(items)
    for b, item in enumerate(items):
        alone = logits_of([item])[0]
        torch.testing.assert_close(together[b], alone, rtol=0, atol=1e-5)  # a position slip moves them by ~6e-3


def test_a_failed_batch_is_retried_one_by_one(loaded, video_dir, monkeypatch):
    """Out of memory on a batch (injected): each video is retried alone and still gets its caption."""
    settings = GenerationSettings(max_new_tokens=6, min_new_tokens=6)
    captioner = Captioner(loaded, CaptionOptions(settings=settings, pooling_shape=(4, 6, 6), num_frames=8))
    jobs = [j for j in discover(video_dir) if "broken" not in j.path][:3]
    want = []
    run_captions(captioner, jobs, want.append, batch_size=1, workers=0)
    real = captioner._generate
    sizes = []

    def flaky(batch):
        sizes.append(len(batch))
        if len(batch) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch)

    monkeypatch.setattr(captioner, "_generate", flaky)
    got = []
    run_captions(captioner, jobs, got.append, batch_size=3, workers=0)
    assert sizes == [3, 1, 1, 1]
    assert [r["caption"] for r in got] == [r["caption"] for r in want]
