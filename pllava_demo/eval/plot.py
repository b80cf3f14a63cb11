"""A PNG of the sweep's curve, drawn with PIL: the average (accuracy or judge score) against LoRA alpha,
one line per strategy; with a single strategy, one line per task as well (the paper's Figure 9 shape).

Knows the summary dictionary (summary.py) and PIL only.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 560, 70, 230, 40, 60


def curves(summary: dict) -> dict[str, list[tuple[float, float]]]:
    """line name -> [(alpha, value)] sorted by alpha."""
    lines: dict[str, list[tuple[float, float]]] = {}
    strategies = {s["label"].split(" | ")[0] for s in summary["settings"]}
    for s in summary["settings"]:
        alpha = s["settings"]["lora_alpha"]
        if alpha is None or s["avg"] is None:
            continue
        name = s["label"].split(" | ")[0]
        lines.setdefault(f"{name}: Avg", []).append((alpha, s["avg"]))
        if len(strategies) == 1:
            for task, v in s["tasks"].items():
                lines.setdefault(task, []).append((alpha, v))
    return {k: sorted(v) for k, v in lines.items()}


def draw(summary: dict, path) -> Path | None:
    """Write the PNG; None when there is nothing to draw (no alpha, or nothing scored)."""
    lines = curves(summary)
    points = [p for ps in lines.values() for p in ps]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    px = lambda x: LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT)  # noqa: E731
    py = lambda y: H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM)  # noqa: E731
    d.rectangle([LEFT, TOP, W - RIGHT, H - BOTTOM], outline="black")
    for x in sorted(set(xs)):
        d.line([px(x), H - BOTTOM, px(x), H - BOTTOM + 5], fill="black")
        d.text((px(x) - 8, H - BOTTOM + 8), f"{x:g}", fill="black")
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        d.line([LEFT - 5, py(y), LEFT, py(y)], fill="black")
        d.text((8, py(y) - 6), f"{y:.1f}", fill="black")
    d.text(((W - RIGHT) // 2, H - 25), "LoRA alpha", fill="black")
    d.text((LEFT, 12), summary["metric"] + " against LoRA alpha", fill="black")
    for i, (name, pts) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [(px(x), py(y)) for x, y in pts]
        width = 3 if name.endswith("Avg") else 1
        if len(xy) > 1:
            d.line(xy, fill=colour, width=width)
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        d.text((W - RIGHT + 10, TOP + 14 * i), name[:34], fill=colour)
    path = Path(path)
    im.save(path)
    return path
