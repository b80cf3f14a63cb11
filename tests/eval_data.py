"""Test helper: a small dataset in MVBench's own layout (json/<task>.json + video/<folder>/...), written
with real PyAV videos, a GIF and a frame folder, and a plain multiple-choice JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from videos import counter_frame, write_video

# (task, json file, video folder) from the official table: two bounded tasks, two unbounded ones and
# the frame-folder task
TASKS = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480"),
    "Action Antonym": ("action_antonym.json", "ssv2_video"),
    "Object Existence": ("object_existence.json", "clevrer/video_validation"),
    "Action Localization": ("action_localization.json", "sta/sta_video"),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq"),
}


def _q(video, k, extra=None):
    options = ["yes", "no", "a red ball"][: 2 + k % 2]
    entry = {"video": video, "question": f"Is there a dog {k}?", "candidates": options, "answer": options[k % len(options)]}
    entry.update(extra or {})
    return entry


def write_mvbench(root, *, n_frames: int = 30) -> tuple[Path, int, int]:
    """Writes the layout; returns (root, questions, distinct clips)."""
    root = Path(root)
    (root / "json").mkdir(parents=True)
    questions, clips = 0, set()
    for t, (task, (name, folder)) in enumerate(TASKS.items()):
        vdir = root / "video" / folder
        vdir.mkdir(parents=True)
        entries = []
        for k in range(2):
            if task == "Episodic Reasoning":
                video = f"clip{k}"
                (vdir / video).mkdir()
                for i in range(1, 13):
                    Image.fromarray(counter_frame(i, 64, 48)).save(vdir / video / f"{i:05d}.jpg")
                entries.append(_q(video, k, {"start": 0.5, "end": 3.5}))
            else:
                video = f"v{t}_{k}.mp4"
                write_video(vdir / video, n_frames=n_frames, width=64, height=48, fps=10)
                bound = {"start": 0.4 + k, "end": 2.2} if task in ("Action Sequence", "Action Localization") else {}
                entries.append(_q(video, k, bound))
            clips.add((folder, video, json.dumps({k: v for k, v in entries[-1].items() if k in ("start", "end")})))
        if task == "Action Antonym":  # a second question about the same clip: decoded once for both
            entries.append(_q("v1_0.mp4", 5))
        (root / "json" / name).write_text(json.dumps(entries))
        questions += len(entries)
    return root, questions, len(clips)
