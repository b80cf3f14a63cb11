"""A tab's chat as files a person keeps: Markdown to read, JSON to load back into a script.

Each answer comes with the settings it was made with (recorded by studio/tab.py when it was asked:
frames, time range, pooling, LoRA alpha, generation) and the times of the frames the model saw.
Plain functions of a tab (studio/tab.py); knows nothing of gradio.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..studio.tab import Tab, turn_settings
from .time_links import escape

FORMAT = "pllava-studio-chat/1"


def chat_record(studio: Tab) -> dict:
    """The chat as plain JSON values: the model, and per turn the question, answer and settings."""
    turns = []
    for k, turn in enumerate(studio.session.turns):
        turns.append({"question": turn.question, "answer": turn.answer, "stopped": turn.stopped,
                      "settings": turn_settings(studio, k)})
    # the checkpoint by its last part only: the server's folders are nobody's business
    return {"format": FORMAT, "model": Path(str(studio.engine.loaded.name)).name, "turns": turns}


def _seconds(values) -> str:
    return ", ".join(f"{t:g}" for t in values)


def _settings_line(s: dict | None) -> str:
    if s is None:
        return "_settings not recorded_"
    g = s["generation"]
    visual = ("pooling {}×{}×{}".format(*s["pooling"]) if s.get("pooling") else
              "strategy " + ", ".join(f"{k} {v}" for k, v in s["strategy"].items()))
    part = f"{s['range_s'][0]:g}-{s['range_s'][1]:g} s" if s["range_s"] else "whole video"
    decoding = (f"sampling (temperature {g['temperature']:g}, top-p {g['top_p']:g}, seed {g['seed']})"
                if g["do_sample"] else "greedy")
    alpha = f", LoRA alpha {s['lora_alpha']:g}" if s["lora_alpha"] is not None else ""
    used = "".join(f"  \nChapter {c['chapter']} used: {c['start']:g}-{c['end']:g} s, {c['frames']} frames"
                   for c in (s.get("chapters") or {}).get("chapters", ()))  # a whole-video answer's chapters
    return (f"{s['frames']} frames of {escape(str(s['video']))} ({part}), {visual}{alpha}; {decoding}, "
            f"max {g['max_new_tokens']} new tokens, repetition penalty {g['repetition_penalty']:g}  \n"
            f"Frame times (s): {_seconds(s['timestamps_s'])}{used}")


def _quote(text: str) -> str:
    """Text as a Markdown block quote, every line of it (a blank answer is still a quote), escaped as
    the page escapes it: a model's (or a visitor's) link, tag or emphasis stays text."""
    return "\n".join("> " + escape(line) for line in (text or "").splitlines() or [""])


def chat_markdown(record: dict) -> str:
    lines = [f"# PLLaVA Studio chat\n\nModel: {escape(str(record['model']))}\n"]
    for k, turn in enumerate(record["turns"], 1):
        stopped = " *(stopped)*" if turn["stopped"] else ""
        lines += [f"## {k}. Question\n", _quote(turn["question"]), "", f"**Answer**{stopped}\n",
                  _quote(turn["answer"]), "", _settings_line(turn["settings"]), ""]
    return "\n".join(lines)


def write_chat(studio: Tab, folder: Path) -> list[Path]:
    """chat.md and chat.json in `folder` (made if needed); named after the video when there is one."""
    record = chat_record(studio)
    stem = "chat"
    if studio.video is not None:
        stem = "chat-" + (re.sub(r"[^\w.-]+", "_", Path(studio.video.clip.source).stem)[:60] or "video")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(chat_markdown(record), encoding="utf-8")
    js.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
    return [md, js]


def export_chat(studio: Tab, folder: Path) -> list[Path]:
    """write_chat into the studio's own downloads folder, which goes when the studio closes."""
    studio.exports = Path(folder)
    return write_chat(studio, studio.exports)
