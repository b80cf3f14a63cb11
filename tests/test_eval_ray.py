"""`eval mvbench --ray` on a local Ray instance (2 CPUs, no dashboard) with the tiny checkpoint: the actors
run the plain sweep's work per clip, so every row equals the plain run's (same keys, same answer ids), and
a rerun has nothing left to do. Skipped, saying why, when the optional Ray extra is not installed."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install -r requirements-ray.txt")

from eval_data import write_mvbench  # noqa: E402
from test_caption_ray import local_ray  # noqa: E402, F401 - the same local Ray instance fixture

from pllava_demo.cli import main  # noqa: E402
from pllava_demo.eval.results import read_rows  # noqa: E402


def test_ray_rows_equal_the_plain_run(local_ray, tiny_official, tmp_path, capsys):
    root, n_questions, _ = write_mvbench(tmp_path / "MVBench")
    base = ["eval", "mvbench", "--data", str(root), "--model", str(tiny_official), "--device", "cpu",
            "--frames", "4", "--pooling", "4,2,2", "--lora-alpha", "0,4", "--tasks", "Action Sequence,Episodic Reasoning,Action Antonym"]
    assert main(base + ["--out", str(tmp_path / "plain.jsonl")]) == 0
    assert main(base + ["--out", str(tmp_path / "ray.jsonl"), "--ray", "--actors", "1"]) == 0
    plain, on_ray = read_rows(tmp_path / "plain.jsonl"), read_rows(tmp_path / "ray.jsonl")
    assert len(plain) == 2 * 7 and set(plain) == set(on_ray)
    for key, row in plain.items():
        assert on_ray[key]["answer_ids"] == row["answer_ids"] and on_ray[key]["frame_indices"] == row["frame_indices"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "ray.jsonl"), "--ray"]) == 0
    assert "0 row(s) to run, 14 already in" in capsys.readouterr().err
