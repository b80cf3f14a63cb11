"""Benchmark: the OpenAI-compatible API against the same work driven in-process, in one run on one engine.

  in-process  N page studios (studio/tab.py: the same settings, video and answer path the API uses) ask at
              the same moment from N threads; their answers are decoded together by the scheduler.
  API         N `openai` clients (threads of another process) stream the same questions at the same moment
              over HTTP (127.0.0.1, uvicorn, the video sent as a base64 data: URL every time, as a stateless
              client does), to the same engine.

Rows: first questions (a new conversation: its whole prompt is prefilled, the encoded video is a cache
hit) and follow-ups (the earlier messages repeated: the KV prefix is reused). Each answer is exactly
ANSWER_TOKENS tokens. Time = wall time from the common start to the last answer's end; the API overhead
is API time / in-process time (target <= 1.10).

Time to first token through the API, client side (request sent -> first text): a first question on a video
the server has never seen (decoded, CLIP-encoded, prefilled) against its follow-up (target <= 0.05x).

    python bench/bench_openai.py [--model small] [--sessions 4] [--rounds 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import base64
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from _common import at_once, checkpoint, drain, first_token_clock, load_average, machine, median, table

import pllava_demo.chat.engine as engine_module
from pllava_demo.chat.engine import Engine
from pllava_demo.openai_api import mount
from pllava_demo.openai_api.service import ApiSettings
from pllava_demo.studio import tab as tabs
from pllava_demo.studio.model_holder import ModelHolder

CLIENTS = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))  # the API's clients run here
NUM_FRAMES = 8
ANSWER_TOKENS = 32
QUESTIONS = ["What is happening in this video?", "Describe the background.", "Who is in the video?",
             "What colours do you see?", "Is it day or night?", "What happens at the end?",
             "Describe the characters and actions.", "What is the camera doing?"]
FOLLOW_UP = "And then what happens?"
GEN = {"max_new_tokens": ANSWER_TOKENS, "min_new_tokens": ANSWER_TOKENS, "num_frames": NUM_FRAMES}


def serve(engine, sessions: int) -> str:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    mount(app, ModelHolder.ready(engine), ApiSettings(concurrency=sessions, max_queue=sessions))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1"


def messages(url: str, question: str, earlier: tuple = ()) -> list[dict]:
    first = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                          {"type": "text", "text": earlier[0] if earlier else question}]}]
    if not earlier:
        return first
    return first + [{"role": "assistant", "content": earlier[1]}, {"role": "user", "content": question}]


def api_stream(client, model: str, msgs: list[dict]) -> str:
    stream = client.chat.completions.create(
        model=model, messages=msgs, stream=True, temperature=0, max_tokens=ANSWER_TOKENS,
        extra_body={"min_tokens": ANSWER_TOKENS, "num_frames": NUM_FRAMES})
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def time_to_first_token(client, model: str, msgs: list[dict]) -> tuple[str, float]:
    """(answer, seconds from sending the request to its first token id), one request alone; the server runs in
    this process, so the engine's first-token clock and the client's share perf_counter (a random model's ids
    may decode to no text, so the id, not the text, is timed)."""
    with first_token_clock(engine_module) as marks:
        t0 = time.perf_counter()
        text = api_stream(client, model, msgs)
    return text, marks[-1][0] - t0


def wall(calls) -> float:
    t0, ends = at_once(calls)
    return max(ends) - t0


def in_process_round(engine, video, n: int) -> tuple[float, float]:
    studios = [tabs.Tab(engine) for _ in range(n)]

    def first_call(studio, question):  # what a first request does: settings, video (a cache hit), answer
        tabs.set_options(studio, **GEN)
        tabs.load_video(studio, video)
        drain(tabs.stream_answer(studio, question))

    first = wall([lambda s=s, q=q: first_call(s, q) for s, q in zip(studios, QUESTIONS)])
    follow = wall([lambda s=s: drain(tabs.stream_answer(s, FOLLOW_UP)) for s in studios])
    for s in studios:
        s.close()
    return first, follow


def api_round(base: str, model: str, url: str, n: int) -> tuple[float, float]:
    """First questions, then follow-ups, from N clients in a process of their own (as clients are: their
    parsing does not share the server's interpreter lock)."""
    return CLIENTS.submit(client_round, base, model, url, n).result()


def client_round(base: str, model: str, url: str, n: int) -> tuple[float, float]:
    import openai

    clients = [openai.OpenAI(base_url=base, api_key="-", max_retries=0, timeout=600) for _ in range(n)]
    answers = [None] * n

    def first_call(k):
        answers[k] = api_stream(clients[k], model, messages(url, QUESTIONS[k]))

    first = wall([lambda k=k: first_call(k) for k in range(n)])
    follow = wall([lambda k=k: api_stream(clients[k], model, messages(url, FOLLOW_UP, (QUESTIONS[k], answers[k])))
                   for k in range(n)])
    return first, follow


def forget_videos(engine) -> None:
    """Empty the encoded-video caches: the next question decodes and encodes its video again."""
    for cache in (engine.feature_cache, engine.pooled):
        for key in cache.keys():
            cache.pop(key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small", choices=["tiny", "small"])
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import openai
    from tests.videos import write_video

    from _common import OUT

    OUT.mkdir(parents=True, exist_ok=True)
    video = write_video(OUT / "openai_clip.mp4", n_frames=48, width=320, height=240)
    url = "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()
    engine = Engine.load(checkpoint(args.model), device="cpu", quantization="none", max_rows=args.sessions)
    base = serve(engine, args.sessions)
    client = openai.OpenAI(base_url=base, api_key="-", max_retries=0, timeout=600)
    model = client.models.list().data[0].id
    n = args.sessions
    in_process_round(engine, video, n)  # warm-up: the video is encoded once, caches and threads are up
    api_round(base, model, url, n)
    rows = {"in-process": ([], []), "API": ([], [])}
    for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits both alike
        for name, run in (("in-process", lambda: in_process_round(engine, video, n)),
                          ("API", lambda: api_round(base, model, url, n))):
            first, follow = run()
            rows[name][0].append(first)
            rows[name][1].append(follow)
    ttft_first, ttft_follow = [], []
    for k in range(args.rounds):
        forget_videos(engine)
        question = QUESTIONS[k % len(QUESTIONS)]
        answer, t_first = time_to_first_token(client, model, messages(url, question))
        _, t_follow = time_to_first_token(client, model, messages(url, FOLLOW_UP, (question, answer)))
        ttft_first.append(t_first)
        ttft_follow.append(t_follow)

    print(f"\n{machine()}; model {args.model}, {n} sessions, {NUM_FRAMES} frames, {ANSWER_TOKENS}-token answers, "
          f"median of {args.rounds} rounds; load {load_average()}\n")
    body = []
    for k, what in enumerate(("first questions", "follow-ups")):
        inproc, api = median(rows["in-process"][k]), median(rows["API"][k])
        body.append([what, f"{inproc:.3f}", f"{api:.3f}", f"{api / inproc:.3f}x"])
    print(table([f"{n} at once", "in-process s", "API s", "API / in-process (target <= 1.10)"], body))
    f, u = median(ttft_first), median(ttft_follow)
    print()
    print(table(["API time to first token", "first question s", "follow-up s", "follow-up / first (target <= 0.05)"],
                [["new video, then its follow-up", f"{f:.3f}", f"{u:.3f}", f"{u / f:.3f}x"]]))


if __name__ == "__main__":
    main()
