"""The GPU check's report: markdown tables and the targets from bench_gpu.py measure's JSON files,
gpu_check.sh's stage list and pytest's junit XML. Knows file formats and numbers; runs nothing.
Every table is printed even when a part is missing (its cells say "missing"), so a failed stage
shows as a hole, not as a silently shorter report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from _common import table

TARGET_PEAK_GIB = 6.0  # 4-bit, 16-frame video
TARGET_FOLLOW = 0.1  # follow-up TTFT / first TTFT
TARGET_DECODE = 0.75  # our 4-bit decode / transformers' bf16 generate()
TARGET_CHAPTERS = 2.0  # long videos: chapter captions batched / one by one (issue 23)


def _f(x, fmt=".2f", missing="missing") -> str:
    return missing if x is None or x != x else format(x, fmt)  # x != x: NaN


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "missing"


def _load(paths) -> list[dict]:
    runs = []
    for p in paths:
        try:
            runs.append(json.loads(Path(p).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            quant = {"bf16": "none"}.get(Path(p).stem, Path(p).stem)  # gpu_check.sh's file names
            runs.append({"quant": quant, "errors": {"file": f"{p}: {type(e).__name__}: {e}"}})
    return runs


def _label(run) -> str:
    return (run.get("load") or {}).get("label") or {"4bit": "4-bit nf4", "none": "bf16"}.get(run.get("quant"), "?")


def _config(run, frames=16, shape=(16, 12, 12)):
    return next((c for c in run.get("configs") or [] if c["frames"] == frames and c["shape"] == list(shape)), None)


def _stages(path) -> str:
    rows = []
    for line in Path(path).read_text().splitlines()[1:]:
        rows.append(line.split("\t"))
    return table(["stage", "status", "rc", "seconds", "limit (s)"], rows)


def _junit(path) -> str:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return f"no test results ({type(e).__name__}: {e})"
    rows, counts = [], {"passed": 0, "failed": 0, "skipped": 0}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            status, why = "FAILED", (bad.get("message") or "")[:160]
        elif case.find("skipped") is not None:
            status, why = "skipped", (case.find("skipped").get("message") or "")[:160]
        else:
            status, why = "passed", ""
        counts["failed" if status == "FAILED" else status] += 1
        rows.append([name, status, f"{float(case.get('time', 0)):.1f}", why])
    head = ", ".join(f"{v} {k}" for k, v in counts.items())
    return head + "\n\n" + table(["test", "result", "seconds", "message"], rows)


def summary(paths, stages=None, junit=None) -> str:
    runs = _load(paths)
    first = runs[0] if runs else {}
    v = first.get("versions") or {}
    dry = first.get("device_type") == "cpu"
    out = [f"# GPU check: {first.get('device', '?')}",
           f"{first.get('size', '?')}; torch {v.get('torch', '?')}, transformers {v.get('transformers', '?')}, "
           f"bitsandbytes {v.get('bitsandbytes', '?')}, Python {v.get('python', '?')}; answers of "
           f"{first.get('tokens', '?')} tokens, TTFTs median of {first.get('repeats', '?')}"]
    if dry:
        out.append(f"\n**DRY RUN on CPU at scale {first.get('scale')}: every number below is meaningless; "
                   "only the script's working is proved.**")
    if stages and Path(stages).exists():
        out += ["\n## stages\n", _stages(stages)]
    if junit:
        out += ["\n## CUDA tests (pytest)\n", _junit(junit)]

    out.append("\n## loading\n")
    rows = []
    for r in runs:
        ld = r.get("load") or {}
        rows.append([_label(r), _f(ld.get("load_s"), ".1f"), _f(ld.get("gpu_after_gib"), ".2f", "n/a"),
                     _f(ld.get("gpu_peak_gib"), ".2f", "n/a"), _f(ld.get("host_before_gib")),
                     _f(ld.get("host_peak_gib")), _f(ld.get("host_peak_anon_gib"))])
    out.append(table(["weights", "load (s)", "GPU after load (GiB)", "GPU peak during load (GiB)",
                      "host RSS before (GiB)", "host RSS peak (GiB)", "of it anonymous (GiB)"], rows))
    out.append("\nHost RSS counts the mmapped safetensors pages the loader touched; the anonymous part is "
               "what cannot be given back.")

    bw = (first.get("bandwidth") or {})
    out.append(f"\n## chat per (frames, pooling)\n\nfloor = measured copy bandwidth "
               f"{_f((bw.get('copy_bytes_s') or 0) / 1e9, '.0f')} GB/s (datasheet "
               f"{_f(bw['datasheet_bytes_s'] / 1e9, '.0f') + ' GB/s' if bw.get('datasheet_bytes_s') else 'n/a'}) / bytes one decode step reads "
               "(LLM weights as stored + LoRA + lm_head + KV cache at the answer's mean length)\n")
    rows = []
    for r in runs:
        for c in r.get("configs") or []:
            rows.append([_label(r), c["frames"], "x".join(map(str, c["shape"])), c["visual_tokens"],
                         _f(c["clip_s"], ".3f"), _f(c["ttft_s"], ".3f"), _f(c["first_ttft_s"], ".3f"),
                         _f(c["follow_s"], ".3f"), _f(c["follow_over_first"], ".3f"), c["follow_prefill_tokens"],
                         _f(c["decode_tok_s"], ".1f"), _f(c["step_bytes"] / 1e9, ".2f"),
                         _f(c.get("floor_tok_s"), ".0f"), _f(100 * c["floor_share"], ".0f") + "%" if c.get("floor_share") else "n/a",
                         _f(c.get("peak_gib"), ".2f", "n/a"), _f(c.get("peak_reserved_gib"), ".2f", "n/a")])
        if not r.get("configs"):
            rows.append([_label(r)] + ["missing"] * 15)
    out.append(table(["weights", "frames", "pooling", "visual tokens", "CLIP (s)", "TTFT, video encoded (s)",
                      "first TTFT = CLIP + TTFT (s)", "follow-up TTFT (s)", "follow-up / first",
                      "follow-up prefill tokens", "decode tok/s", "GB read per step", "floor tok/s", "% of floor",
                      "peak GPU alloc (GiB)", "peak GPU reserved (GiB)"], rows))

    official = next((r.get("official") for r in runs if r.get("official")), None)
    out.append("\n## ours vs transformers generate() in bf16 (the official pipeline: CLIP and a full prefill "
               "every turn, DynamicCache), 16 frames, 16x12x12\n")
    off = official or {}
    rows = [["transformers generate() bf16", _f(off.get("first_ttft_s"), ".3f"), _f(off.get("follow_s"), ".3f"),
             _f(off.get("follow_over_first"), ".3f"), _f(off.get("decode_tok_s"), ".1f"), "1.00x", "1.00x", "1.00x"]]
    for r in runs:
        c = _config(r) or {}
        rows.append([f"ours {_label(r)}", _f(c.get("first_ttft_s"), ".3f"), _f(c.get("follow_s"), ".3f"),
                     _f(c.get("follow_over_first"), ".3f"), _f(c.get("decode_tok_s"), ".1f"),
                     _ratio(c.get("first_ttft_s"), off.get("first_ttft_s")),
                     _ratio(c.get("follow_s"), off.get("follow_s")),
                     _ratio(c.get("decode_tok_s"), off.get("decode_tok_s"))])
    out.append(table(["pipeline", "first TTFT (s)", "follow-up TTFT (s)", "follow-up / first", "decode tok/s",
                      "first TTFT / official", "follow-up / official", "decode / official"], rows))

    out.append("\n## concurrent sessions (batched: one decode batch; turns: batching off, as on ZeroGPU; "
               "HF generate: transformers' batched generate on the same prompts; 16 frames, 16x12x12)\n")
    rows = []
    for r in runs:
        conc = r.get("concurrency") or []
        one = next((c["tok_s"] for c in conc if c["sessions"] == 1 and c.get("mode", "batched") == "batched"), None)
        for c in conc:
            rows.append([_label(r), c.get("mode", "turns"), c["sessions"], c["tokens"], _f(c["wall_s"], ".2f"), _f(c["tok_s"], ".1f"),
                         _ratio(c["tok_s"], one), _f(c.get("mean_ttft_s"), ".3f", "n/a"), _f(c.get("max_ttft_s"), ".3f", "n/a"),
                         _f(c.get("peak_gib"), ".2f", "n/a"), "; ".join(c.get("errors") or []) or "-"])
        if not conc:
            rows.append([_label(r)] + ["missing"] * 10)
    out.append(table(["weights", "mode", "sessions", "tokens", "wall (s)", "total tok/s", "vs 1 session", "mean TTFT (s)",
                      "max TTFT (s)", "peak GPU alloc (GiB)", "errors"], rows))

    out.append("\n## chapter captions (long videos: N chapters of 8 frames, batched through the decode loop "
               "vs one by one; chapters/captions.py)\n")
    rows = []
    for r in runs:
        caps = r.get("chapter_captions") or []
        for c in caps:
            rows.append([_label(r), c["chapters"], c["tokens"], _f(c["one_by_one_s"], ".2f"), _f(c["batched_s"], ".2f"),
                         _f(c.get("speedup"), ".2f") + "x", "yes" if c.get("same_greedy") else "NO",
                         "; ".join(c.get("errors") or []) or "-"])
        if not caps:
            rows.append([_label(r)] + ["missing"] * 7)
    out.append(table(["weights", "chapters", "tokens", "one by one (s)", "batched (s)", "batched speed-up",
                      "same captions", "errors"], rows))

    out.append("\n## targets\n")
    q4 = next((r for r in runs if r.get("quant") == "4bit"), {})
    bf = next((r for r in runs if r.get("quant") == "none"), {})
    c4, cb = _config(q4), _config(bf)

    def met(ok) -> str:
        if ok is None:
            return "not measured"
        return ("yes" if ok else "NO") + (" (dry run: meaningless)" if dry else "")

    peak4 = None
    if c4 and c4.get("peak_gib") is not None:
        peak4 = max(c4["peak_gib"], (q4.get("load") or {}).get("gpu_peak_gib") or 0)
    rows = [["4-bit peak GPU memory, 16-frame video (16x12x12), load included", f"<= {TARGET_PEAK_GIB:g} GiB",
             (f"{peak4:.2f} GiB allocated, {c4.get('peak_reserved_gib', 0):.2f} reserved" if peak4 is not None
              else "not measured"), met(None if peak4 is None else peak4 <= TARGET_PEAK_GIB)]]
    for r, c in ((q4, c4), (bf, cb)):
        ratio = c.get("follow_over_first") if c else None
        rows.append([f"follow-up TTFT / first TTFT, {_label(r)}", f"<= {TARGET_FOLLOW:g}x", _f(ratio, ".3f") + "x"
                     if ratio is not None else "not measured", met(None if ratio is None else ratio <= TARGET_FOLLOW)])
    ref = off.get("decode_tok_s")
    for r, c in ((q4, c4), (bf, cb)):
        d = c.get("decode_tok_s") if c else None
        ratio = d / ref if d is not None and ref else None
        rows.append([f"decode, ours {_label(r)} / transformers bf16", f">= {TARGET_DECODE:g}x",
                     _f(ratio, ".2f") + "x" if ratio is not None else "not measured",
                     met(None if ratio is None else ratio >= TARGET_DECODE)])
    for r in (q4, bf):
        speed = max((c.get("speedup") or 0 for c in r.get("chapter_captions") or []), default=None) if r else None
        rows.append([f"chapter captions batched / one by one, {_label(r)}", f">= {TARGET_CHAPTERS:g}x",
                     _f(speed, ".2f") + "x" if speed else "not measured", met(None if not speed else speed >= TARGET_CHAPTERS)])
    out.append(table(["target", "goal", "measured", "met"], rows))

    errors = [f"- {_label(r)}: {k}: {e}" for r in runs for k, e in (r.get("errors") or {}).items()]
    out.append("\n## errors\n\n" + ("\n".join(errors) if errors else "none"))
    return "\n".join(out)
