"""The app on ZeroGPU's process model, without a GPU: the real `spaces` package (pinned) in ZeroGPU
mode, against a stand-in for its scheduling HTTP API (tests/zerogpu_scheduler.py), with only its
CUDA emulation replaced (tests/zerogpu_site/sitecustomize.py says exactly where and why). So every
GPU call of a real `python app.py` runs in a worker process that spaces forks, with its arguments
and results pickled across spaces' queues, and a worker reused only when the scheduler says it is
idle. Driven by gradio_client, the same session must give the same greedy answers as the app
without ZeroGPU, with a fresh worker forced for every call and with one worker reused.
"""

import os
from pathlib import Path

import httpx
import pytest
from gradio_client import handle_file
from gate import held, wait_held
from ui_server import Client, ROOT, running_app, wait_until_ready
from videos import write_video
from zerogpu_scheduler import Scheduler, app_tracebacks

from pllava_demo.studio.zerogpu_runner import MAX_S, gpu_duration

SITE = ROOT / "tests" / "zerogpu_site"
QUESTIONS = ("What happens?", "And then?", "What colour is it?")


def zerogpu_env(scheduler: Scheduler, gate: Path) -> dict:
    return dict(SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL=scheduler.url, PLLAVA_TEST_GATE=str(gate),
                PYTHONPATH=os.pathsep.join([str(SITE), str(ROOT)]))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("zerogpu") / "clip.mp4", n_frames=36, width=160, height=120,
                       pattern="colour")


def stop(url: str, c: Client) -> None:
    r = httpx.post(f"{url}/gradio_api/run/stop", json={"data": [], "session_hash": c.session_hash}, timeout=10)
    r.raise_for_status()


def stats(c: Client) -> dict:
    return dict(c.predict(api_name="/status")["stats"])


def session(url: str, video: Path, gate: Path) -> dict:
    """Upload, three chat turns, a slider move, Stop mid-answer, Regenerate, Compare: what came back,
    and the engine counters after each step."""
    c = Client(url, verbose=False)
    out = {"stats": []}
    out["upload"] = c.predict(handle_file(str(video)), 8, api_name="/upload")
    c.predict({"pooling": [4, 6, 6], "max_new_tokens": 16, "min_new_tokens": 16}, api_name="/set_options")
    out["stats"].append(("upload", stats(c)))
    out["answers"] = []
    for q in QUESTIONS:
        out["answers"].append(c.predict(q, api_name="/chat"))
        out["stats"].append((q, stats(c)))
    # a slider move: the frame count re-encodes once, pooling re-pools; then a question at the new settings
    out["four"] = c.predict({"num_frames": 4, "pooling": [2, 3, 3]}, api_name="/set_options")
    out["answers"].append(c.predict("With four frames?", api_name="/chat"))
    out["stats"].append(("four frames", stats(c)))
    # Stop mid-answer: a long answer, held by the test gate after its first piece, so it cannot end first
    c.predict({"max_new_tokens": 1024, "min_new_tokens": 1024}, api_name="/set_options")
    with held(gate):
        job = c.submit("Tell me everything.", api_name="/chat")
        assert wait_held(gate, 120) >= 1
        stop(url, c)
        out["stopped"] = job.result()
    out["turns_after_stop"] = c.predict(api_name="/info")["turns"]
    # Regenerate the stopped answer: the whole answer, of which the stopped one is the beginning
    out["regenerated"] = c.predict(api_name="/regenerate")
    out["stats"].append(("regenerate", stats(c)))
    c.predict({"max_new_tokens": 16, "min_new_tokens": 16}, api_name="/set_options")
    out["compare"] = c.predict({"lora_alpha": 20}, api_name="/compare")
    out["turns"] = c.predict(api_name="/info")["turns"]
    out["stats"].append(("compare", stats(c)))
    c.close()
    return out


@pytest.fixture(scope="module")
def reference(tiny_official, video, tmp_path_factory, gate):
    """The same session without ZeroGPU (spaces is installed, SPACES_ZERO_GPU unset: in-process)."""
    log = tmp_path_factory.mktemp("zerogpu_ref") / "app.log"
    env = {"SPACES_ZERO_GPU": "false", "PLLAVA_TEST_GATE": str(gate)}
    with running_app(tiny_official, log, "--debug-stats", env=env) as url:
        wait_until_ready(url)
        return session(url, video, gate)


def check_same_as(ref: dict, got: dict) -> None:
    assert got["upload"]["timestamps"] == ref["upload"]["timestamps"] and got["upload"]["frames"] == 8
    assert got["four"]["frames"] == 4 and got["four"]["visual_tokens"] == 18
    assert got["answers"] == ref["answers"] and all(got["answers"])
    stopped = got["turns_after_stop"][-1]
    assert stopped["question"] == "Tell me everything." and stopped["stopped"] and stopped["answer"] == got["stopped"]
    assert got["regenerated"] == ref["regenerated"] and got["regenerated"].startswith(got["stopped"])
    assert len(got["stopped"]) < len(got["regenerated"])
    assert got["compare"] == ref["compare"] and got["compare"]["a"] != got["compare"]["b"]
    assert [(t["question"], t["answer"], t["stopped"]) for t in got["turns"]] == \
           [(t["question"], t["answer"], t["stopped"]) for t in ref["turns"]]
    last = got["turns"][-1]
    assert (last["question"], last["answer"], last["stopped"]) == ("Tell me everything.", got["regenerated"], False)
    # the answers go back into the prompt as the model wrote them (`raw`), workers or not
    assert [t["raw"] for t in got["turns"]] == [t["raw"] for t in ref["turns"]] and all(t["raw"] for t in got["turns"])


def run_on_zerogpu(model, video, tmp_path, reuse: bool):
    gate = tmp_path / "gate"
    gate.mkdir()
    with Scheduler() as scheduler:
        scheduler.reuse = reuse
        with running_app(model, tmp_path / "app.log", "--debug-stats", env=zerogpu_env(scheduler, gate)) as url:
            wait_until_ready(url)
            got = session(url, video, gate)
        log = (tmp_path / "app.log").read_text()
        return got, scheduler, log


def check_counters(got: dict) -> None:
    """The dear part, decoding and CLIP-encoding, runs once per (video, frame count): 8 then 4 frames,
    never again per turn, whichever worker answered."""
    final = got["stats"][-1][1]
    assert final["videos_decoded"] == 2 and final["vision_calls"] == 2 and final["vision_frames"] == 12
    for (_, before), (_, after) in zip(got["stats"], got["stats"][1:]):
        assert after["prefills"] > before.get("prefills", 0)  # the workers' counters reached /status


def costs(got: dict) -> list[tuple[str, dict]]:
    """What each step added to the engine counters (printed with -s: the measured cost of a turn)."""
    out = []
    for (_, before), (name, after) in zip([("", {})] + got["stats"], got["stats"]):
        out.append((name, {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}))
    for name, delta in out:
        print(f"{name:>20}: {delta}")
    return out


def check_durations(scheduler: Scheduler) -> None:
    """What each GPU call asked the scheduler for follows from the work it was given (frames, max new
    tokens, one or two answers), stays within the limit, and every call was released. Measured seconds
    are printed, not asserted: CPU time here says nothing about a GPU's."""
    calls = scheduler.gpu_calls()
    for c in calls:
        print(f"GPU call: requested {c['requested_s']} s, took {c['measured_s']:.2f} s here")
    assert all(c["measured_s"] is not None and not c["failed"] for c in calls)
    expected = [gpu_duration(8, 1)] + [gpu_duration(8, 16)] * 3 + [gpu_duration(4, 1), gpu_duration(4, 16)] \
        + [gpu_duration(4, 1024)] * 2 + [gpu_duration(4, 16, answers=2)]
    assert [c["requested_s"] for c in calls] == expected
    assert all(15 <= c["requested_s"] <= MAX_S for c in calls)  # ZeroGPU's limit is unpublished; 120 s is safe


def test_fresh_worker_for_every_call_gives_the_same_session(tiny_official, video, reference, tmp_path):
    got, scheduler, log = run_on_zerogpu(tiny_official, video, tmp_path, reuse=False)
    check_same_as(reference, got)
    check_counters(got)
    check_durations(scheduler)
    # a fresh fork per GPU call: as many worker processes as calls, none of them this app's main process
    assert len(scheduler.worker_pids()) == len(scheduler.of("/schedule")) >= 8
    assert len(scheduler.of("/startup-report")) == 1
    # no KV cache survives a fresh worker: each turn prefills its whole prompt, video tokens included
    per_turn = [delta.get("prefill_tokens", 0) for _, delta in costs(got)[1:4]]
    assert per_turn[1] > per_turn[0] and per_turn[2] > per_turn[1]
    assert got["stats"][-1][1].get("reused_tokens", 0) == 0
    assert app_tracebacks(log) == []


def test_reused_worker_gives_the_same_session_and_keeps_the_kv_cache(tiny_official, video, reference, tmp_path):
    got, scheduler, log = run_on_zerogpu(tiny_official, video, tmp_path, reuse=True)
    check_same_as(reference, got)
    check_counters(got)
    check_durations(scheduler)
    # spaces keeps one worker per decorated function: encode, answer, compare; each forked once, then
    # reused (so the answer worker never encoded the video: the features it uses came with the call)
    assert len(scheduler.worker_pids()) == 3 < len(scheduler.of("/schedule"))
    # the worker kept the session's KV cache: a follow-up prefills only its own new tokens
    first, second, third = (delta for _, delta in costs(got)[1:4])
    assert second["reused_tokens"] > 0 and third["reused_tokens"] > second["reused_tokens"]
    assert second["prefill_tokens"] < 100 and third["prefill_tokens"] < 100 < first["prefill_tokens"]
    assert app_tracebacks(log) == []


def test_duration_grows_with_frames_and_tokens_within_the_limit():
    assert gpu_duration(4, 64) < gpu_duration(16, 64) < gpu_duration(32, 64)
    assert gpu_duration(16, 64) < gpu_duration(16, 512) < gpu_duration(16, 1024)
    assert gpu_duration(16, 512) < gpu_duration(16, 512, answers=2)
    assert gpu_duration(32, 10**6, answers=2) == MAX_S <= 120


def test_auto_quantization_is_bf16_on_zerogpu_and_4bit_on_a_gpu_of_your_own(monkeypatch):
    """bitsandbytes' 4-bit layers refuse the `.to()` that ZeroGPU's CUDA emulation moves weights with:
    --quantization auto must not pick them there (the real `spaces` package, in ZeroGPU mode)."""
    from pllava_demo.network.device_policy import auto_quantization

    monkeypatch.delenv("PLLAVA_NO_ZEROGPU", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert auto_quantization("cuda") == "4bit" and auto_quantization("cpu") == "none"
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert auto_quantization("cuda") == "none" and auto_quantization("cpu") == "none"
