"""Benchmark: how long until something answers. Import time of our modules, and the time from
`python app.py --model <tiny checkpoint> --port P` to the page answering HTTP 200 (and to the
model being loaded, read from the app's own "loaded N tensors" log line).

Every measurement is a fresh subprocess (nothing cached in the interpreter; the OS file cache is
warm after the first run, as on a restarted server). Import time is measured inside the child
around the import statement; the process wall time also counts interpreter start-up, shown beside
`python -c pass`. Medians of --repeats. Knows nothing about the model beyond the checkpoint helper.

    python bench/bench_startup.py [--repeats 5] [--models tiny small]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from _common import ROOT, checkpoint, load_average, machine, median, table

MODULES = ["pllava_demo", "pllava_demo.config", "pllava_demo.chat.engine", "pllava_demo.network.checkpoint", "pllava_demo.frames.video",
           "pllava_demo.ui"]
ENV = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
APP_TIMEOUT_S = 180


def import_child(module: str) -> tuple[float, float]:
    """(seconds inside the child around `import module`, wall seconds of the whole process)."""
    code = ("import time; t = time.perf_counter(); " + (f"import {module}; " if module else "")
            + "print(time.perf_counter() - t)")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"import {module} failed:\n{res.stderr[-2000:]}")
    return float(res.stdout.strip().splitlines()[-1]), wall


def heaviest_imports(module: str, n: int = 6) -> list[tuple[str, float]]:
    """Third-party and stdlib packages by cumulative import time (python -X importtime), largest
    first: for each package, its slowest single import entry (nested imports are inside it)."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                         text=True, env=ENV, cwd=ROOT)
    best: dict[str, float] = {}
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        package = parts[2].strip().split(".")[0]
        if package != "pllava_demo":
            best[package] = max(best.get(package, 0.0), int(parts[1].strip()) / 1e6)
    return sorted(best.items(), key=lambda kv: -kv[1])[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_child(model_dir) -> dict:
    """Start app.py, poll / until HTTP 200; watch its log for the model being loaded; stop it."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--model", str(model_dir), "--device", "cpu",
                             "--port", str(port)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    marks: dict[str, float] = {}
    log: list[str] = []

    def watch():
        for line in proc.stdout:
            log.append(line)
            if "loaded" in line and "tensors" in line and "model" not in marks:
                marks["model"] = time.perf_counter() - t0

    threading.Thread(target=watch, daemon=True).start()
    try:
        while time.perf_counter() - t0 < APP_TIMEOUT_S:
            if proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{''.join(log)[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        marks["http"] = time.perf_counter() - t0
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"no HTTP 200 within {APP_TIMEOUT_S} s:\n{''.join(log)[-3000:]}")
        while "model" not in marks and time.perf_counter() - t0 < APP_TIMEOUT_S and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return marks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    args = p.parse_args()
    print(f"# bench_startup on {machine()}; load average at start {load_average()}\n")
    bare = [import_child("") for _ in range(args.repeats)]
    bare_wall = median(w for _, w in bare)
    rows = [["(python -c pass)", "-", f"{bare_wall:.3f}", "1.0x"]]
    for module in MODULES:
        runs = [import_child(module) for _ in range(args.repeats)]
        inside, wall = median(r[0] for r in runs), median(r[1] for r in runs)
        rows.append([f"import {module}", f"{inside:.3f}", f"{wall:.3f}", f"{wall / bare_wall:.1f}x"])
    print(f"## import time (fresh subprocess, median of {args.repeats})\n")
    print(table(["what", "import (s)", "process wall (s)", "wall / bare python"], rows))
    for module in ("pllava_demo.chat.engine", "pllava_demo.ui"):
        top = ", ".join(f"{name} {sec:.2f} s" for name, sec in heaviest_imports(module))
        print(f"\nheaviest top-level imports under `import {module}` (-X importtime, cumulative): {top}")
    if not (ROOT / "app.py").exists():
        print("\n## app start-up: not run (app.py is missing)")
        return
    rows = []
    for kind in args.models:
        ckpt = checkpoint(kind)
        try:
            runs = [app_child(ckpt) for _ in range(args.repeats)]
        except RuntimeError as e:
            print(f"\n## app start-up: not run for {kind} ({str(e).splitlines()[0]})")
            continue
        http = median(r["http"] for r in runs)
        models = [r["model"] for r in runs if "model" in r]
        model = f"{median(models):.2f}" if models else "not seen in the log"
        rows.append([kind, f"{http:.2f}", model, f"{http / bare_wall:.0f}x"])
    if rows:
        print(f"\n## `python app.py --model <checkpoint> --device cpu --port P` (median of {args.repeats})\n")
        print(table(["checkpoint", "HTTP 200 on / (s)", "model loaded (s)", "HTTP 200 / bare python"], rows))
    print(f"\n(load average at end {load_average()})")


if __name__ == "__main__":
    main()
