"""`caption --ray` on a local Ray instance (2 CPUs, no dashboard) with the tiny checkpoint: the Ray
Data pipeline (decode tasks -> caption actor -> driver-side JSONL, Parquet at the end) writes the
same records' captions as the plain run, records the corrupt file, and a rerun skips everything.
Skipped, saying why, when the optional Ray extra is not installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")
pytest.importorskip("ray.data", reason="Ray Data is missing: pip install -r requirements-ray.txt")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with ray[data]")

from pllava_demo.cli import main  # noqa: E402

from videos import write_video  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    from pllava_demo.caption.on_ray import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ray_videos")
    write_video(d / "a.mp4", n_frames=24, width=160, height=120, pattern="colour")
    write_video(d / "b.mp4", n_frames=40, width=256, height=144, pattern="colour")
    (d / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(2000))
    return d


def _args(tiny, folder, out, *extra):
    return ["caption", str(folder), "--out", str(out), "--model", str(tiny), "--device", "cpu", "--quantization",
            "none", "--pooling", "4,6,6", "--frames", "8", "--max-new-tokens", "16", "--min-new-tokens", "16",
            "--batch-size", "2", "--cpu-dtype", "bfloat16", *extra]


def _by_path(out: Path) -> dict:
    return {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_ray_pipeline_writes_the_plain_runs_captions(local_ray, tiny_official, three_videos, tmp_path):
    plain_out, ray_out, parquet = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl", tmp_path / "ray.parquet"
    assert main(_args(tiny_official, three_videos, plain_out, "--workers", "1")) == 0
    assert main(_args(tiny_official, three_videos, ray_out, "--ray", "--parquet", str(parquet))) == 0

    plain, on_ray = _by_path(plain_out), _by_path(ray_out)
    assert plain.keys() == on_ray.keys() and len(on_ray) == 3
    for path, r in on_ray.items():
        assert r.get("caption") == plain[path].get("caption")
        assert r.get("error") == plain[path].get("error")
        assert r["timestamps"] == plain[path]["timestamps"] and r["settings"] == plain[path]["settings"]
    assert sum(bool(r.get("caption")) for r in on_ray.values()) == 2
    assert {r["settings"]["dtype"] for r in on_ray.values() if "settings" in r} == {"bfloat16"}  # --cpu-dtype reached the actors
    assert on_ray[str(three_videos / "c.mp4")]["error_type"] == "VideoError"

    table = pq.read_table(parquet)
    assert sorted(table.column("path").to_pylist()) == sorted(on_ray)
    assert dict(zip(table.column("path").to_pylist(), table.column("caption").to_pylist())) == {
        p: r.get("caption") for p, r in on_ray.items()}

    before = ray_out.read_bytes()
    assert main(_args(tiny_official, three_videos, ray_out, "--ray")) == 0
    assert ray_out.read_bytes() == before, "a rerun skips every video already written"
