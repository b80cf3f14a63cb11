"""The prepared GPU check (bench/gpu_check.sh) cannot rot unseen: its smallest CPU dry run goes through
every stage (env, the CUDA tests' collection, checkpoint writing, 4-bit and bf16 measuring, the
official generate() baseline, concurrency, the report) and writes every table. Numbers are not
checked for speed (they mean nothing on CPU), only that each part produced them."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_stage_and_writes_every_table(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PLLAVA_CKPT": str(tmp_path / "ckpt"), "TMPDIR": str(tmp_path)}
    run = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--dry-run", "--scale", "0.03125",
                          "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["4bit.json", "bf16.json", "gpu_check.log", "stages.tsv",
                                                     "summary.md", "tests.xml"]
    stages = [line.split("\t") for line in (out / "stages.tsv").read_text().splitlines()[1:]]
    assert [(s[0], s[1]) for s in stages] == [(name, "ok") for name in
                                              ("env", "tests", "write", "measure-4bit", "measure-bf16", "summary")], stages

    for quant in ("4bit", "bf16"):
        r = json.loads((out / f"{quant}.json").read_text())
        assert r["errors"] == {} and r["device_type"] == "cpu"
        assert r["load"]["load_s"] > 0 and r["load"]["host_peak_gib"] >= r["load"]["host_peak_anon_gib"] > 0
        (c,) = r["configs"]
        assert (c["frames"], c["shape"], c["visual_tokens"]) == (16, [16, 12, 12], 2304)
        for key in ("clip_s", "ttft_s", "follow_s", "decode_tok_s", "floor_tok_s"):
            assert math.isfinite(c[key]) and c[key] > 0, key
        assert c["decode_tokens"] == 3  # 4 forced tokens: 3 decode steps after the first
        assert c["follow_prefill_tokens"] < c["prompt_tokens"] / 10  # the follow-up re-used the video's cache
        assert [(x["sessions"], x["mode"], x["tokens"], x["errors"]) for x in r["concurrency"]] == [
            (n, mode, 2 * n, []) for n in (1, 2) for mode in ("batched", "turns", "HF generate")]
        (caps,) = r["chapter_captions"]  # long videos' chapter captions, batched and one by one
        assert (caps["chapters"], caps["errors"], caps["same_greedy"]) == (2, [], True)
        assert caps["one_by_one_s"] > 0 and caps["batched_s"] > 0
    official = json.loads((out / "bf16.json").read_text())["official"]
    assert official["decode_tokens"] == 3 and official["first_ttft_s"] > 0
    # the official pipeline re-prefills everything, so its follow-up prompt is the whole conversation
    assert official["follow_prompt_tokens"] > official["first_prompt_tokens"] > 2304

    summary = (out / "summary.md").read_text()
    for heading in ("## stages", "## CUDA tests (pytest)", "## loading", "## chat per (frames, pooling)",
                    "## ours vs transformers generate()", "## concurrent sessions (batched", "## chapter captions",
                    "## targets", "chapter captions batched / one by one"):
        assert heading in summary, heading
    assert "DRY RUN on CPU" in summary and "missing" not in summary
    assert "3 skipped" in summary  # the CUDA tests were collected without CUDA (and without importing av)
