"""Rows -> per-setting results: multiple choice accuracy per task and the average over every question
(the official leaderboard's "Avg"); open-ended judge scores per task (VCG: per sub-score), their average
and the judge's accuracy (VideoQA: 'yes'; VCG: scores above 3), or a note that the rows are unscored. Rendered as a terminal table, Markdown and JSON.

Knows row dictionaries only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path


def setting_label(settings: dict) -> str:
    s = settings["strategy"]
    name = s["name"] if s["name"] != "pllava" else "pllava " + "x".join(map(str, s["shape"]))
    alpha = settings["lora_alpha"]
    return f"{name} | alpha {'-' if alpha is None else f'{alpha:g}'}"


def summarise(rows) -> dict:
    """{"settings": [{"label", "settings", "tasks": {task: value}, "avg", "n", "errors", "unscored"}], "metric"}."""
    groups: dict[str, dict] = {}
    for row in rows:
        label = setting_label(row["settings"])
        g = groups.setdefault(label, {"label": label, "settings": row["settings"], "rows": []})
        g["rows"].append(row)
    out, metric = [], "accuracy %"
    for g in groups.values():
        ok = [r for r in g["rows"] if "error" not in r]
        per_task: dict[str, list[float]] = defaultdict(list)
        right: list[bool] = []  # judged rows: VideoQA's 'yes', or each VCG score above 3 (official Avg_Acc)
        unscored = 0
        for r in ok:
            if r["kind"] == "mc":
                per_task[r["task"]].append(100.0 if r["correct"] else 0.0)
            elif "judge" in r:
                metric = "judge score (0-5)"
                for name, score in r["judge"]["scores"].items():
                    per_task[r["task"] if name == "score" else name].append(float(score))
                    right.append(bool(r["judge"]["correct"]) if name == "score" else score > 3)
            else:
                unscored += 1
        values = [v for vs in per_task.values() for v in vs]
        out.append({"label": g["label"], "settings": g["settings"],
                    "tasks": {t: sum(v) / len(v) for t, v in sorted(per_task.items())},
                    "avg": sum(values) / len(values) if values else None, "n": len(ok),
                    "judge_acc": 100.0 * sum(right) / len(right) if right else None,
                    "errors": len(g["rows"]) - len(ok), "unscored": unscored})
    out.sort(key=lambda s: (s["settings"]["strategy"]["name"], str(s["settings"]["strategy"]),
                            s["settings"]["lora_alpha"] if s["settings"]["lora_alpha"] is not None else -1))
    return {"metric": metric, "settings": out}


def _cells(summary: dict) -> tuple[list[str], list[list[str]]]:
    tasks = sorted({t for s in summary["settings"] for t in s["tasks"]})
    judged = any(s["judge_acc"] is not None for s in summary["settings"])
    head = ["setting", *tasks, "Avg", *(["Acc %"] if judged else []), "n", "errors"]
    body = [[s["label"], *(f"{s['tasks'][t]:.2f}" if t in s["tasks"] else "" for t in tasks),
             "" if s["avg"] is None else f"{s['avg']:.2f}",
             *([] if not judged else ["" if s["judge_acc"] is None else f"{s['judge_acc']:.2f}"]),
             str(s["n"]), str(s["errors"])]
            for s in summary["settings"]]
    return head, body


def notes(summary: dict) -> list[str]:
    unscored = sum(s["unscored"] for s in summary["settings"])
    if unscored:
        return [f"{unscored} open-ended answer(s) are recorded but unscored: no judge was given "
                "(--judge-url URL --judge-model NAME scores them; the rows are kept)."]
    return []


def as_text(summary: dict) -> str:
    head, body = _cells(summary)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([f"[{summary['metric']}]", line(head), *map(line, body), *notes(summary)])


def as_markdown(summary: dict) -> str:
    head, body = _cells(summary)
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in body]
    tail = ["", *notes(summary)] if notes(summary) else []
    return "\n".join([f"Metric: {summary['metric']}", "", *rows, *tail]) + "\n"


def write_summary(summary: dict, stem) -> list[Path]:
    """stem.md and stem.json; returns the paths."""
    md, js = Path(f"{stem}.md"), Path(f"{stem}.json")
    md.write_text(as_markdown(summary), encoding="utf-8")
    js.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return [md, js]
