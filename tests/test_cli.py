"""The command line as a user runs it: make-tiny, ask (streams), chat (a loop on stdin), errors."""

import os
import subprocess
import sys
from pathlib import Path

from videos import write_video

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, stdin=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "pllava_demo", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_make_tiny_then_ask_streams_an_answer(tmp_path):
    out = _cli("make-tiny", str(tmp_path / "tiny"))
    assert out.returncode == 0 and "random" in out.stdout
    video = write_video(tmp_path / "my video.mp4", n_frames=30)
    out = _cli("ask", str(video), "What is the person doing?", "--model", str(tmp_path / "tiny"),
               "--frames", "8", "--pooling", "8,6,6", "--max-new-tokens", "6")
    assert out.returncode == 0, out.stderr
    assert "8 frames at" in out.stderr and "288 visual tokens" in out.stderr
    assert "tiny random test model" in out.stderr
    assert out.stdout.strip()  # the streamed answer (random text)


def test_chat_loop_encodes_once_and_answers_each_question(tmp_path):
    _cli("make-tiny", str(tmp_path / "tiny"))
    video = write_video(tmp_path / "v.mp4", n_frames=30)
    out = _cli("chat", str(video), "--model", str(tmp_path / "tiny"), "--frames", "4", "--max-new-tokens", "5",
               stdin="first question\nsecond question\n\n/clear\nthird\n/quit\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("pllava> ") == 3
    assert out.stderr.count("Encoding frames with CLIP") == 1


def test_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("<html>not a video</html>")
    _cli("make-tiny", str(tmp_path / "tiny"))
    out = _cli("ask", str(bad), "q", "--model", str(tmp_path / "tiny"))
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in out.stderr
    out = _cli("ask", str(bad), "q", "--model", "nobody/nothing")
    assert out.returncode == 2 and "not in the local cache" in out.stderr and "Traceback" not in out.stderr
