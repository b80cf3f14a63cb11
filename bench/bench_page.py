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
`--profile` also prints what the page's main thread spent its time on over the whole answer (CDP CPU
profiler) and what its longest tasks were made of (a trace, with the CPU samples inside them); the
trace is kept in bench/out/ for Chrome's DevTools; each long task is printed with the part of it the
main thread spent on the CPU (what is left, it waited: for a CPU, or for the compositor).
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
    window.__longest = 0; window.__renders = 0; window.__first = null; window.__last = null; window.__tasks = [];
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
            window.__longest = Math.max(window.__longest, e.duration);
            window.__tasks.push(Math.round(e.duration));
        }
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


# Send is back: waited on in the page (a 100 ms check of one button), not by Playwright's expect, whose
# polling computed the page's accessibility tree (its accessible names) on the main thread: blocks of
# ~200 ms of the harness's own on a loaded machine, counted as the page's
SEND_BACK_JS = """() => new Promise((done) => {
    const back = () => document.querySelector('#send')?.checkVisibility() || false;
    if (back()) { done(); return; }
    const check = setInterval(() => { if (back()) { clearInterval(check); done(); } }, 100);
})"""
LAST_ANSWER_JS = """() => { const b = document.querySelectorAll('#chat [data-testid=bot]');
    return b.length ? b[b.length - 1].innerText : ''; }"""


def _tokens(tokenizer, tab) -> int:
    """The tokens the page shows in its last answer (read when the page's main thread gets to it)."""
    return len(tokenizer(tab.evaluate(LAST_ANSWER_JS), add_special_tokens=False)["input_ids"])


def _long_answer_settings(tab, tokens: int) -> None:
    """Answers up to `tokens` tokens, with h' = w' = 1: 16 visual tokens, so the tiny model's 4,096-token
    context has room for the answer. Send reads the sliders themselves, so their values are what is
    waited on (the panel's text can lag: two pooling events at once may finish in either order).
    Generation was opened (browser.open_generation) before the upload: typed right after the opening,
    a value can be put back by gradio's replay of its stored values."""
    from browser import set_number

    set_number(tab, "max-new", tokens)
    for knob in ("pool-h", "pool-w"):
        set_number(tab, knob, 1)


def _ask(tab, video: Path, question: str) -> None:
    from playwright import sync_api

    tab.locator("#question textarea").fill(question)
    tab.locator("#send").click()
    sync_api.expect(tab.locator("#stop")).to_be_visible()


def _self_times(profile: dict, windows: list[tuple[float, float]] | None = None,
                top: int = 12) -> list[tuple[str, float]]:
    """A CDP CPU profile's functions by self time (ms), most first: each sample's time goes to the
    function on top of the stack then ("(program)" is the browser's own work: style, layout, paint, or
    the thread waiting for a CPU on a loaded machine). With `windows` ((start, end) in the trace's
    microseconds: the profile's clock), only the samples inside them."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    spent: dict[str, float] = {}
    at = profile["startTime"]
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"]):
        at += delta
        if windows is not None and not any(start <= at <= end for start, end in windows):
            continue
        frame = nodes[node_id]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1].split("?")[0]
        name = f"{frame['functionName'] or '(anonymous)'} {url}:{frame['lineNumber'] + 1}" if url else \
            frame["functionName"] or "(anonymous)"
        spent[name] = spent.get(name, 0.0) + delta / 1000
    return sorted(spent.items(), key=lambda kv: -kv[1])[:top]


def _long_tasks(events: list[dict], top: int = 3) -> list[tuple[float, list[tuple[str, float]], tuple[float, float], float | None]]:
    """The `top` longest main-thread tasks of a trace, each with its time by kind of work (ms, self
    time: a script's own time, without the layout it forced), its window, and the thread's CPU time in
    it (ms; the trace's `tdur`: what is left of the task's length is the thread waiting for a CPU), most
    first."""
    main = {(e["pid"], e["tid"]) for e in events if e.get("name") == "thread_name"
            and e.get("args", {}).get("name") == "CrRendererMain"}
    spans = sorted((e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in main and "dur" in e),
                   key=lambda e: (e["ts"], -e["dur"]))
    tasks = sorted((e for e in spans if e["name"] == "RunTask"), key=lambda e: -e["dur"])[:top]
    out = []
    for task in tasks:
        end = task["ts"] + task["dur"]
        inside = [e for e in spans if task["ts"] <= e["ts"] and e["ts"] + e["dur"] <= end and e is not task]
        spent: dict[str, float] = {}
        stack: list[dict] = []
        for e in inside:  # sorted by start, longer first: a stack of the open spans gives each its parent
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            name = e["name"]
            if name == "FunctionCall":
                data = e.get("args", {}).get("data", {})
                name = f"FunctionCall {data.get('functionName') or '?'} {data.get('url', '').rsplit('/', 1)[-1]}"
            spent[name] = spent.get(name, 0.0) + e["dur"] / 1000
            if stack:
                parent = stack[-1]
                pname = parent["name"]
                if pname == "FunctionCall":
                    data = parent.get("args", {}).get("data", {})
                    pname = f"FunctionCall {data.get('functionName') or '?'} {data.get('url', '').rsplit('/', 1)[-1]}"
                spent[pname] = spent.get(pname, 0.0) - e["dur"] / 1000
            stack.append(e)
        out.append((task["dur"] / 1000, sorted(((k, v) for k, v in spent.items() if v >= 1), key=lambda kv: -kv[1])[:8],
                    (task["ts"], end), task["tdur"] / 1000 if "tdur" in task else None))
    return out


def one_tree(tree: Path, model: Path, video: Path, tokens: int, browser, tokenizer, profile: bool = False,
             stops: bool = True) -> dict:
    from playwright import sync_api
    from browser import open_generation, open_tab
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
            open_generation(tab)
            tab.locator("#video-input input[type=file]").set_input_files(str(video))
            sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=120_000)
            _long_answer_settings(tab, tokens)
            tab.evaluate(WATCH_JS)
            if profile:  # the page's CPU while the whole answer streams (sampled each 1 ms), and a trace
                cdp = tab.context.new_cdp_session(tab)
                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
                cdp.send("Profiler.start")
                trace, done = [], []
                cdp.on("Tracing.dataCollected", lambda params: trace.extend(params["value"]))
                cdp.on("Tracing.tracingComplete", lambda params: done.append(1))
                cdp.send("Tracing.start", {"categories": "devtools.timeline,disabled-by-default-devtools.timeline,"
                                           "__metadata", "transferMode": "ReportEvents"})
            t0 = time.monotonic()
            _ask(tab, video, "Describe the video.")
            tab.evaluate(SEND_BACK_JS)
            wall = time.monotonic() - t0
            tab.wait_for_timeout(1000)  # the last render's tasks are over
            if profile:
                cpu = cdp.send("Profiler.stop")["profile"]
                out["profile"] = _self_times(cpu)
                cdp.send("Tracing.end")
                while not done:
                    tab.wait_for_timeout(100)
                out["long_tasks"] = _long_tasks(trace, top=5)
                out["profile_long"] = _self_times(cpu, [w for _, _, w, _ in out["long_tasks"]])
                import json  # the whole trace, for Chrome's DevTools (Performance: load profile)
                (OUT / f"bench_page_trace_{tree.name or 'tree'}.json").write_text(json.dumps({"traceEvents": trace}))
                out["tasks"] = sorted(tab.evaluate("() => window.__tasks"), reverse=True)[:10]
            out["tokens"] = _tokens(tokenizer, tab)
            out["rate"] = out["tokens"] / wall
            out["longest_ms"] = tab.evaluate("() => window.__longest")
            span = tab.evaluate("() => (window.__last - window.__first) / 1000")
            out["renders_per_s"] = tab.evaluate("() => window.__renders") / max(span, 1e-3)
            answer = tab.evaluate(LAST_ANSWER_JS)
            print(tree, out, f"{answer.count(chr(10))} line breaks: {answer[:200]!r}", file=sys.stderr, flush=True)
            if not stops:
                return out
            tab.close()
            # 2. Stop at 1,000 and at `tokens` tokens (asked for the most there is, so it is still streaming)
            for at in STOP_AT:
                tab = open_tab(browser, url, 1440, 900)
                open_generation(tab)
                tab.locator("#video-input input[type=file]").set_input_files(str(video))
                sync_api.expect(tab.locator("#frames img")).to_have_count(16, timeout=120_000)
                _long_answer_settings(tab, LIMIT)
                tab.evaluate(WATCH_JS)
                _ask(tab, video, "Describe the video.")  # the same question: a long answer (greedy)
                while (shown := _tokens(tokenizer, tab)) < at and tab.locator("#stop").is_visible():
                    tab.wait_for_timeout(20)
                print(tree, at, "stop at", shown, file=sys.stderr, flush=True)
                out[f"stop_{at}_s"], out[f"stop_{at}_at"] = None, shown
                if shown < at or not tab.locator("#stop").is_visible():
                    # the page caught up with an answer already over: there was no Stop to press
                    tab.close()
                    continue
                t0 = time.monotonic()
                try:
                    tab.locator("#stop").click(timeout=120_000)
                except Exception:  # gone meanwhile (the answer ended while the click waited for the page)
                    pass
                tab.evaluate(SEND_BACK_JS)
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
        return f"no Stop to press: the answer was over at {r[f'stop_{at}_at']:,} tokens shown"
    ended = "" if r[f"stop_{at}_stopped"] else ", the answer ended first"
    return f"{r[f'stop_{at}_s']:.2f} ({r[f'stop_{at}_at']:,}{ended})"


def _longest_cell(r: dict, at: int) -> str:
    return "-" if f"longest_{at}_ms" not in r else f"{r[f'longest_{at}_ms']:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="name=path of a source tree to run")
    ap.add_argument("--tokens", type=int, default=LIMIT, help="the longest answer asked for")
    ap.add_argument("--profile", action="store_true",
                    help="also print the page's top functions by self time over the whole answer (CDP profiler)"
                         " and what its longest tasks were made of (a trace)")
    ap.add_argument("--no-stop", action="store_true", help="only the whole answer (no Stop runs)")
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
            r = one_tree(Path(path).resolve(), model, video, args.tokens, browser, tokenizer, args.profile,
                         not args.no_stop)
            if args.profile:
                print(f"{name}: the 10 longest tasks (ms): {r['tasks']}")
                print(f"{name}: self time over the whole answer (ms):")
                for fn, ms in r["profile"]:
                    print(f"  {ms:8.0f}  {fn}")
                for ms, parts, _, cpu in r["long_tasks"]:
                    on_cpu = f" ({cpu:.0f} ms of it on the CPU)" if cpu is not None else ""
                    print(f"{name}: a {ms:.0f} ms task{on_cpu}: " + ", ".join(f"{k} {v:.0f}" for k, v in parts))
                print(f"{name}: self time inside those {len(r['long_tasks'])} tasks (ms):")
                for fn, ms in r["profile_long"]:
                    print(f"  {ms:8.0f}  {fn}")
            rows.append([name, r["tokens"], f"{r['rate']:.0f}", f"{r['longest_ms']:.0f}", f"{r['renders_per_s']:.1f}",
                         *[cell for at in STOP_AT for cell in (_longest_cell(r, at), _stop_cell(r, at) if f"stop_{at}_s" in r else "-")]])
    print(f"{machine()}; load {load_average()}")
    print(table(["tree", "answer tokens", "tokens/s (page)", "longest block, whole answer (ms)", "chat renders/s",
                 *[h for at in STOP_AT for h in (f"longest block to Stop at {at:,} (ms)",
                                                 f"Stop delay at {at:,} (s; tokens shown)")]], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
