"""What each resource attack of issue #21 costs a server, measured against any checkout of this app:
`python bench/bench_attacks.py --checkout DIR` starts DIR/app.py (tiny random model, CPU, loopback) and
prints one line per attack: the memory, disk or time it costs and what a normal visitor gets.
Run it on two checkouts in the same session to compare (bench/README.md has a table).

Only 127.0.0.1 is contacted; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "tests"))
sys.path.insert(0, str(HERE))

from gradio_client import handle_file  # noqa: E402
from test_server_bounds import (fn_index, png_header_only, queue_call, raw_upload, request,  # noqa: E402
                                stalled_upload, status)
from ui_server import Client, app_process, wait_until_ready  # noqa: E402
from videos import write_video  # noqa: E402


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_upload(url: str, video: Path) -> str:
    t = time.monotonic()
    c = Client(url, verbose=False)
    try:
        c.predict(handle_file(str(video)), 4, api_name="/upload")
        return f"served in {time.monotonic() - t:.1f} s"
    except Exception as e:
        return f"refused ({str(e)[:60]})"
    finally:
        c.close()


def attacks(url: str, pid: int, work: Path, uploads: Path) -> None:
    small = write_video(work / "small.mp4", n_frames=12, width=64, height=48)
    # 7: a 32 MB body to the queue
    before = rss_mb(pid)
    body = json.dumps({"data": ["x" * (32 * 2**20)], "fn_index": 0, "session_hash": "big"}).encode()
    code, _ = request(url, "POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    print(f"7 32 MB JSON to queue/join: HTTP {code}, RSS +{rss_mb(pid) - before:.0f} MB")
    # 4: a 13000x13000 PNG of 170 kB
    bomb = png_header_only(work / "bomb.png", 13000, 13000)
    peak = rss_mb(pid, "VmHWM")
    outcome = timed_upload(url, bomb)
    print(f"4 {bomb.stat().st_size // 1024} kB PNG of 13000x13000: {outcome}; peak RSS +{rss_mb(pid, 'VmHWM') - peak:.0f} MB")
    # 1: uploads claiming all but 2 kB of the budget (the room left, where /status publishes it), sending nothing
    s = status(url)
    claims = ([s["upload_budget_bytes"] - s["upload_bytes"] - 2048] if "upload_bytes" in s else [32 * 2**20 - 1024] * 2)
    sockets = [stalled_upload(url, n) for n in claims]
    time.sleep(1)
    print(f"1 stalled uploads claiming {[n // 2**20 for n in claims]} MB open: a normal visitor's upload {timed_upload(url, small)}")
    for s in sockets:
        s.settimeout(45)
        t = time.monotonic()
        try:
            answer = s.recv(64).split(b"\r\n")[0].decode() or "closed"
        except OSError:
            answer = "still open"
        print(f"  stalled upload after {time.monotonic() - t:.0f} s more: {answer}")
        s.close()
    # 2: routes the page does not use
    codes = {p: request(url, m, p, b"{}")[0] for m, p in [("POST", "/gradio_api/process_recording"),
                                                         ("GET", "/monitoring/summary")]}
    print(f"2 framework routes: {codes}")
    # 5: deep links
    status_fn = fn_index(url, "status")
    for k in range(20):  # a session gradio has a record of, then its deep link
        queue_call(url, f"linked{k}", status_fn, [])
        request(url, "GET", f"/gradio_api/deep_link?session_hash=linked{k}")
    links = list((uploads / "deep_links").rglob("*")) if (uploads / "deep_links").exists() else []
    print(f"5 20 sessions' deep_link calls: {sum(p.is_file() for p in links)} files written under the upload folder")
    # 6: 2,000 eight-byte uploads, and what a visitor waits for a GET while small uploads go on
    t = time.monotonic()
    refused = 0
    for k in range(125):
        code, _ = raw_upload(url, [(f"f{k}-{j}.mp4", b"%08d" % (k * 16 + j)) for j in range(16)])
        refused += code != 200
    files = [p for p in uploads.rglob("f*-*.mp4") if p.is_file()]
    blocks = sum(p.stat().st_blocks * 512 for p in files)
    print(f"6 2,000 eight-byte uploads in {time.monotonic() - t:.0f} s: {len(files)} on disk, {blocks // 1024} kB of "
          f"blocks ({8 * len(files) // 1024} kB by size), {refused} requests refused")
    waits, stop = [], threading.Event()

    def uploader():
        k = 0
        while not stop.is_set() and k < 200:
            raw_upload(url, [(f"g{k}.mp4", b"12345678")])
            k += 1

    thread = threading.Thread(target=uploader)
    thread.start()
    for _ in range(20):
        t = time.monotonic()
        request(url, "GET", "/config")
        waits.append(time.monotonic() - t)
    stop.set()
    thread.join()
    print(f"6 GET /config during small uploads, {len(files)} files there: median {sorted(waits)[10] * 1000:.0f} ms, "
          f"max {max(waits) * 1000:.0f} ms")
    # 3: sixteen sessions with their own 32-frame video, 32 MB cache
    videos = [write_video(work / f"v{k}.mp4", n_frames=32 + k, width=320, height=240) for k in range(16)]
    clients = [Client(url, verbose=False) for _ in videos]
    clients[0].predict(handle_file(str(videos[0])), 32, api_name="/upload")
    before = rss_mb(pid)
    for c, v in zip(clients[1:], videos[1:]):
        c.predict(handle_file(str(v)), 32, api_name="/upload")
    s = status(url)
    print(f"3 15 more sessions with 32-frame videos: RSS +{rss_mb(pid) - before:.0f} MB, feature cache "
          f"{s['feature_cache_bytes'] / 2**20:.0f} of {s['feature_cache_budget_bytes'] / 2**20:.0f} MB")
    for c in clients:
        c.close()


def records(url: str, pid: int, idle_s: float) -> None:
    status_fn = fn_index(url, "status")
    before = rss_mb(pid)
    for k in range(1000):
        queue_call(url, f"abandoned{k}", status_fn, [], read=False)
    for k in range(2000):
        raw_upload(url, [], query=f"?upload_id=unread{k}")
    grown = rss_mb(pid) - before
    time.sleep(idle_s + 20)  # past the idle timeout and the clean-up's next pass
    s = status(url).get("stats", {})
    print(f"+ 1,000 abandoned sessions and 2,000 unread upload ids: RSS +{grown:.0f} MB at once, "
          f"+{rss_mb(pid) - before:.0f} MB {idle_s + 20:.0f} s later; gradio records then: {s or 'not reported'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", type=Path, default=HERE, help="the app to attack (default: this one)")
    p.add_argument("--part", choices=["all", "attacks", "records"], default="all",
                   help="records: only gradio's per-session and per-upload records")
    args = p.parse_args()
    from pllava_demo.network.tiny import make_tiny

    work = Path(tempfile.mkdtemp(prefix="pllava-attacks-"))
    model = make_tiny(work / "tiny", layout="official")
    app = args.checkout / "app.py"
    import ui_server

    ui_server.ROOT = args.checkout  # app_process runs ROOT/app.py
    flags = ["--upload-budget-mb", "64", "--feature-cache-mb", "32", "--max-file-size", "20", "--upload-grace", "600",
             "--debug-stats"]
    print(f"attacking {app}")
    uploads = work / "uploads"
    if args.part in ("all", "attacks"):
        with app_process(model, work / "app.log", *flags, "--idle-timeout", "600",
                         env={"GRADIO_TEMP_DIR": str(uploads)}) as (url, proc):
            wait_until_ready(url)
            attacks(url, proc.pid, work, uploads)
    if args.part == "attacks":
        return
    with app_process(model, work / "app2.log", *flags, "--idle-timeout", "5",
                     env={"GRADIO_TEMP_DIR": str(work / "uploads2")}) as (url, proc):
        wait_until_ready(url)
        records(url, proc.pid, 5)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
