"""Benchmark layouts -> `Item`s: one video clip (file, data type, bound) and one question (two for VCG's
consistency task) with its reference answer.

- MVBench's own layout (the Hugging Face OpenGVLab/MVBench folders, as the official eval reads them):
  `DIR/json/<task>.json` and `DIR/video/<folder>/...`, the task table below (json file, video folder,
  data type, whether start/end apply) read from tasks/eval/mvbench/__init__.py.
- Plain multiple choice JSONL: {"video", "question", "options" (or "candidates"), "answer" (the option's
  text, its letter or its 0-based index), optional "start"/"end" seconds, optional "task"}.
- Open-ended: VCG (`DIR/Zero_Shot_QA/Benchmarking_QA/*.json`, `DIR/Videos/Benchmarking/`), the VideoQA
  layout (`DIR/<set>/test_q.json` + `test_a.json`, ActivityNet-QA among them), or JSONL {"video",
  "question", "answer", optional "task"}.

Every problem with the data is an InputError naming the file and entry. Knows JSON and paths only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputError
from ..jsonl import read_jsonl
from .matching import option_label
from .protocols import mvbench_question
from .sampling import DataType

# task: (json file, video folder under DIR/video, data type, bound) -- official table, sic
MVBENCH_TASKS: dict[str, tuple[str, str, DataType, bool]] = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480", "video", True),
    "Action Prediction": ("action_prediction.json", "star/Charades_v1_480", "video", True),
    "Action Antonym": ("action_antonym.json", "ssv2_video", "video", False),
    "Fine-grained Action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos", "video", False),
    "Unexpected Action": ("unexpected_action.json", "FunQA_test/test", "video", False),
    "Object Existence": ("object_existence.json", "clevrer/video_validation", "video", False),
    "Object Interaction": ("object_interaction.json", "star/Charades_v1_480", "video", True),
    "Object Shuffle": ("object_shuffle.json", "perception/videos", "video", False),
    "Moving Direction": ("moving_direction.json", "clevrer/video_validation", "video", False),
    "Action Localization": ("action_localization.json", "sta/sta_video", "video", True),
    "Scene Transition": ("scene_transition.json", "scene_qa/video", "video", False),
    "Action Count": ("action_count.json", "perception/videos", "video", False),
    "Moving Count": ("moving_count.json", "clevrer/video_validation", "video", False),
    "Moving Attribute": ("moving_attribute.json", "clevrer/video_validation", "video", False),
    "State Change": ("state_change.json", "perception/videos", "video", False),
    "Fine-grained Pose": ("fine_grained_pose.json", "nturgbd", "video", False),
    "Character Order": ("character_order.json", "perception/videos", "video", False),
    "Egocentric Navigation": ("egocentric_navigation.json", "vlnqa", "video", False),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq", "frame", True),
    "Counterfactual Inference": ("counterfactual_inference.json", "clevrer/video_validation", "video", False),
}

VCG_TASKS = {"generic_qa": "generic_qa.json", "temporal_qa": "temporal_qa.json", "consistency_qa": "consistency_qa.json"}
# set: (folder with test_q/test_a, video folder, video extensions, name prefix, data type)
VIDEOQA_SETS = {
    "MSVD_QA": ("MSVD_Zero_Shot_QA", "MSVD_Zero_Shot_QA/videos", ("avi",), "", "video"),
    "MSRVTT_QA": ("MSRVTT_Zero_Shot_QA", "MSRVTT_Zero_Shot_QA/videos/all", ("mp4",), "", "video"),
    "ActivityNet": ("ActivityNet", "ActivityNet/all_test", ("mp4", "mkv", "webm"), "v_", "video"),
    "TGIF_QA": ("TGIF_QA", "TGIF_QA/tgif_videos", ("gif",), "", "gif"),
}


@dataclass(frozen=True)
class Item:
    task: str
    video: str
    questions: tuple[str, ...]  # what the protocol's query gets (MVBench: the "Question: ...\nOptions:" block)
    answer: str  # multiple choice: "(B) text"; open-ended: the reference answer
    kind: Literal["mc", "open"] = "mc"
    data_type: DataType = "video"
    bound: tuple[float, float] | None = None
    asked: tuple[str, ...] = ()  # open-ended: the questions as asked (the judge's prompt gets these)

    @property
    def clip_key(self) -> tuple:
        return (self.video, self.data_type, self.bound)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"Cannot read {path}: {e}") from None


def _need(entry: dict, key: str, where: str):
    if key not in entry:
        raise InputError(f"{where} has no {key!r}.")
    return entry[key]


def _bound(entry: dict, where: str) -> tuple[float, float] | None:
    if "start" not in entry and "end" not in entry:
        return None
    try:
        start, end = float(entry["start"]), float(entry["end"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where} needs both 'start' and 'end' as numbers of seconds.") from None
    return start, end


def _mc_item(task: str, video: Path, question: str, candidates, answer, where: str, data_type: DataType = "video",
             bound=None) -> Item:
    if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
        raise InputError(f"{where}: the options must be a non-empty list of strings.")
    if len(candidates) > 26:
        raise InputError(f"{where}: at most 26 options (A-Z), got {len(candidates)}.")
    text, label = mvbench_question(str(question), candidates, answer if isinstance(answer, str) else None)
    if label is None:
        index = None
        if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(candidates):
            index = answer
        elif isinstance(answer, str) and len(answer.strip("() .")) == 1:
            index = ord(answer.strip("() .").upper()) - ord("A")
            index = index if 0 <= index < len(candidates) else None
        if index is None:
            raise InputError(f"{where}: the answer {answer!r} is not one of the options (give its text, letter or index).")
        label = option_label(index, candidates[index])
    return Item(task, str(video), (text,), label, "mc", data_type, bound)


def read_mvbench(directory, tasks: list[str] | None = None) -> list[Item]:
    """Items of every task whose json file is in DIR/json (or of `tasks` only)."""
    root = Path(directory)
    if not (root / "json").is_dir():
        raise InputError(f"{root} is not MVBench's layout: it has no json/ folder (see README: fetch MVBench).")
    unknown = sorted(set(tasks or ()) - set(MVBENCH_TASKS))
    if unknown:
        raise InputError(f"Unknown MVBench task(s) {unknown}; the tasks are {', '.join(MVBENCH_TASKS)}.")
    items = []
    for task, (name, folder, data_type, bounded) in MVBENCH_TASKS.items():
        path = root / "json" / name
        if (tasks and task not in tasks) or not path.exists():
            continue
        entries = _load_json(path)
        if not isinstance(entries, list):
            raise InputError(f"{path} is not a list of questions.")
        for i, e in enumerate(entries):
            where = f"{path} entry {i}"
            if not isinstance(e, dict):
                raise InputError(f"{where} is not a JSON object.")
            video = root / "video" / folder / str(_need(e, "video", where))
            bound = _bound(e, where) if bounded else None
            if bounded and bound is None:
                raise InputError(f"{where} has no 'start'/'end', which the {task} task uses.")
            items.append(_mc_item(task, video, _need(e, "question", where), _need(e, "candidates", where),
                                  _need(e, "answer", where), where, data_type, bound))
    if not items:
        raise InputError(f"No MVBench task json found in {root / 'json'}; expected files like action_sequence.json.")
    return items


def read_mc_jsonl(path) -> list[Item]:
    path = Path(path)
    items = []
    for n, e in read_jsonl(path):
        where = f"{path} line {n}"
        video = path.parent / str(_need(e, "video", where))
        options = e.get("options", e.get("candidates"))
        if options is None:
            raise InputError(f"{where} has no 'options'.")
        items.append(_mc_item(str(e.get("task", "all")), video, _need(e, "question", where), options,
                              _need(e, "answer", where), where, "gif" if video.suffix.lower() == ".gif" else "video",
                              _bound(e, where)))
    if not items:
        raise InputError(f"{path} holds no questions.")
    return items


def _find_video(folder: Path, name: str, exts: tuple[str, ...], where: str) -> Path:
    for ext in exts:
        if (folder / f"{name}.{ext}").exists():
            return folder / f"{name}.{ext}"
    raise InputError(f"{where}: no video named {name} ({', '.join(exts)}) in {folder}.")


def _open_item(task: str, video: Path, questions: list, answer, data_type: DataType = "video") -> Item:
    asked = tuple(str(q) for q in questions)
    return Item(task, str(video), asked, str(answer), "open", data_type, None, asked)


def read_open(source) -> list[Item]:
    """VCG's folder, the VideoQA folder (ActivityNet-QA, MSVD, MSRVTT, TGIF) or an open-ended JSONL."""
    src = Path(source)
    if src.is_file():
        return [_open_item(str(e.get("task", "all")), src.parent / str(_need(e, "video", f"{src} line {n}")),
                           [_need(e, "question", f"{src} line {n}")], _need(e, "answer", f"{src} line {n}"))
                for n, e in read_jsonl(src)]
    items: list[Item] = []
    qa = src / "Zero_Shot_QA" / "Benchmarking_QA"
    for task, name in VCG_TASKS.items() if qa.is_dir() else ():
        if not (qa / name).exists():
            continue
        for i, e in enumerate(_load_json(qa / name)):
            where = f"{qa / name} entry {i}"
            video = _find_video(src / "Videos" / "Benchmarking", str(_need(e, "video_name", where)), ("mp4", "mkv"), where)
            keys = ("Q1", "Q2") if task == "consistency_qa" else ("Q",)
            items.append(_open_item(task, video, [_need(e, k, where) for k in keys], _need(e, "A", where)))
    for task, (folder, videos, exts, prefix, data_type) in VIDEOQA_SETS.items():
        q_path, a_path = src / folder / "test_q.json", src / folder / "test_a.json"
        if not q_path.exists():
            continue
        questions, answers = _load_json(q_path), _load_json(a_path)
        if len(questions) != len(answers):
            raise InputError(f"{q_path} and {a_path} hold {len(questions)} and {len(answers)} entries.")
        for i, (q, a) in enumerate(zip(questions, answers)):
            where = f"{q_path} entry {i}"
            video = _find_video(src / videos, prefix + str(_need(q, "video_name", where)), exts, where)
            items.append(_open_item(task, video, [_need(q, "question", where)], _need(a, "answer", where), data_type))
    if not items:
        raise InputError(f"{src} is neither VCG's layout (Zero_Shot_QA/Benchmarking_QA) nor the VideoQA layout "
                         f"(<set>/test_q.json, e.g. ActivityNet/test_q.json), nor a JSONL file.")
    return items
