"""The page while a long answer streams, in real headless Chromium: the longest main-thread block
(a PerformanceObserver for 'longtask') and the Stop delay at 1,000 and 4,000 tokens, and how many
times the chat is re-rendered per second over a whole 4,096-token answer.

Run one app per source tree side by side (e.g. the round-3 page checked out with `git worktree add
/tmp/before 7e609ea`, and this tree), with the same tiny random model, the same video, the same
browser, in one run, and one table:

    python bench/bench_page.py --tree before=/tmp/before --tree after=.

The model is a tiny random one with a 16,384-token context (its greedy answer here runs to the
4,096-token limit: seed 4) and 6 layers, so that it streams ~150-200 tokens/s on this CPU: at least
a GPU's pace, and slow enough that Stop at 4,000 tokens still has an answer to stop.
"Stop delay" is from the click on Stop until Send is back (the page idle again): what a person waits.
"Longest block" is the longest main-thread task from Send until then.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _common import OUT, load_average, machine, table  # noqa: E402

WATCH_JS = """() => {
    window.__longest = 0; window.__renders = 0; window.__first = null; window.__last = null;
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
    }).observe({type: 'longtask'});
    new MutationObserver(() => {
        window.__renders += 1;
        const now = performance.now();
        if (window.__first === null) window.__first = now;
        window.__last = now;
    }).observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true});
}"""
STOP_AT = (1000, 4000)
LIMIT = 4096  # the most any answer may have (config.GenerationSettings)
MODEL = dict(layout="official", context=16384, llm_layers=6, seed=4)  # see the docstring


LAST_ANSWER_JS = """() => { const b = document.querySelectorAll('#chat [data-testid=bot]');
    return b.length ? b[b.length - 1].innerText : ''; }"""


def _tokens(tokenizer, tab) -> int:
    """The tokens the page shows in its last answer (read when the page's main thread gets to it)."""
    return len(tokenizer(tab.evaluate(LAST_ANSWER_JS), add_special_tokens=False)["input_ids"])


def _max_new(tab, n: int) -> None:
    tab.locator("#generation").get_by_text("Generation").first.click()  # the folded settings open
    box = tab.locator("#max-new input[type=number]")
    box.fill(str(n))
    box.press("Enter")


def _few_visual_tokens(tab) -> None:
    """h' = w' = 1: 16 visual tokens, so the tiny model's 4,096-token context has room for the answer.
    Send reads the sliders themselves, so their values are what is waited on (the panel's text can lag:
    two pooling events at once may finish in either order)."""
    from playwright import sync_api

    for knob in ("#pool-h", "#pool-w"):
        box = tab.locator(f"{knob} input[type=number]")
        box.fill("1")
        box.press("Enter")
        sync_api.expect(box).to_have_value("1")


def _ask(tab, video: Path, question: str) -> None:
    from playwright import sync_api

    tab.locator("#question textarea").fill(question)
    tab.locator("#send").click()
    sync_api.expect(tab.locator("#stop")).to_be_visible()


def one_tree(tree: Path, model: Path, video: Path, tokens: int, browser, tokenizer) -> dict:
    from playwright import sync_api
    from browser import open_tab
    from ui_server import app_process

    out = {}
    log = OUT / f"bench_page_{tree.name or 'tree'}.log"
    import ui_server

    saved = ui_server.ROOT
    ui_server.ROOT = tree  # the app of that tree, run with this interpreter
    try:
        with app_process(model, log, "--max-new-tokens", str(LIMIT)) as (url, _):
            # 1. a whole answer of `tokens` tokens: the longest block and the re-renders per second
            tab = open_tab(browser, url, 1440, 900)
            _max_new(tab, tokens)
            tab.locator("#video-input input[type=file]").set_input_files(str(video))
            sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=120_000)
            _few_visual_tokens(tab)
            tab.evaluate(WATCH_JS)
            t0 = time.monotonic()
            _ask(tab, video, "Describe the video.")
            sync_api.expect(tab.locator("#send")).to_be_visible(timeout=900_000)
            wall = time.monotonic() - t0
            out["tokens"] = _tokens(tokenizer, tab)
            out["rate"] = out["tokens"] / wall
            out["longest_ms"] = tab.evaluate("() => window.__longest")
            span = tab.evaluate("() => (window.__last - window.__first) / 1000")
            out["renders_per_s"] = tab.evaluate("() => window.__renders") / max(span, 1e-3)
            print(tree, out, file=sys.stderr, flush=True)
            tab.close()
            # 2. Stop at 1,000 and at `tokens` tokens (asked for the most there is, so it is still streaming)
            for at in STOP_AT:
                tab = open_tab(browser, url, 1440, 900)
                _max_new(tab, LIMIT)
                tab.locator("#video-input input[type=file]").set_input_files(str(video))
                sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=120_000)
                _few_visual_tokens(tab)
                tab.evaluate(WATCH_JS)
                _ask(tab, video, "Describe the video.")  # the same question: a long answer (greedy)
                while (shown := _tokens(tokenizer, tab)) < at and tab.locator("#stop").is_visible():
                    tab.wait_for_timeout(20)
                print(tree, at, "stop at", shown, file=sys.stderr, flush=True)
                out[f"stop_{at}_s"], out[f"stop_{at}_at"] = None, shown
                if shown < at:  # the page caught up with an answer already over: there was no Stop to press
                    tab.close()
                    continue
                t0 = time.monotonic()
                try:
                    tab.locator("#stop").click(timeout=120_000)
                except Exception:  # gone meanwhile (the answer ended while the click waited for the page)
                    pass
                sync_api.expect(tab.locator("#send")).to_be_visible(timeout=900_000)
                out[f"stop_{at}_s"] = time.monotonic() - t0
                out[f"stop_{at}_at"] = _tokens(tokenizer, tab)
                out[f"stop_{at}_stopped"] = "(stopped)" in tab.evaluate(LAST_ANSWER_JS)
                out[f"longest_{at}_ms"] = tab.evaluate("() => window.__longest")
                tab.close()
    finally:
        ui_server.ROOT = saved
    return out


def _stop_cell(r: dict, at: int) -> str:
    if r[f"stop_{at}_s"] is None:
        return f"no Stop to press: the page first showed {r[f'stop_{at}_at']:,} tokens, the whole answer"
    ended = "" if r[f"stop_{at}_stopped"] else ", the answer ended first"
    return f"{r[f'stop_{at}_s']:.2f} ({r[f'stop_{at}_at']:,}{ended})"


def _longest_cell(r: dict, at: int) -> str:
    return "-" if f"longest_{at}_ms" not in r else f"{r[f'longest_{at}_ms']:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="name=path of a source tree to run")
    ap.add_argument("--tokens", type=int, default=LIMIT, help="the longest answer asked for")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from browser import chromium
    from pllava_demo.network.tiny import make_tiny
    from videos import write_video

    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "page_tiny_16k"
    if not (model / "config.json").exists():
        make_tiny(model, **MODEL)
    tokenizer = AutoTokenizer.from_pretrained(model)
    video = write_video(OUT / "page_ball.mp4", n_frames=48, width=192, height=144, pattern="colour")
    rows = []
    with chromium() as browser:
        for spec in args.tree:
            name, _, path = spec.partition("=")
            r = one_tree(Path(path).resolve(), model, video, args.tokens, browser, tokenizer)
            rows.append([name, r["tokens"], f"{r['rate']:.0f}", f"{r['longest_ms']:.0f}", f"{r['renders_per_s']:.1f}",
                         *[cell for at in STOP_AT for cell in (_longest_cell(r, at), _stop_cell(r, at))]])
    print(f"{machine()}; load {load_average()}")
    print(table(["tree", "answer tokens", "tokens/s (page)", "longest block, whole answer (ms)", "chat renders/s",
                 *[h for at in STOP_AT for h in (f"longest block to Stop at {at:,} (ms)",
                                                 f"Stop delay at {at:,} (s; tokens shown)")]], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
