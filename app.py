"""PLLaVA Studio: `python app.py` serves the Gradio app on http://127.0.0.1:7860.

Thin entry point: flags (with PLLAVA_* environment fallbacks, so a Space configures it by
variables) -> start loading the model in the background -> build the page -> launch.
"""

import argparse
import logging
import os
import tempfile


def env(name: str, default):
    return os.environ.get(name, default)


def parse_args(argv=None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(description="PLLaVA Studio: chat with a video in the browser.")
    p.add_argument("--model", default=env("PLLAVA_MODEL", "ermu2001/pllava-7b"),
                   help="Hub repo id or local checkpoint folder (env PLLAVA_MODEL; default %(default)s)")
    p.add_argument("--quantization", default=env("PLLAVA_QUANTIZATION", "auto"), choices=["auto", "none", "4bit"],
                   help="auto = 4-bit nf4 on CUDA, none (bf16) on ZeroGPU and on CPU (env PLLAVA_QUANTIZATION)")
    p.add_argument("--device", default=env("PLLAVA_DEVICE", "auto"), choices=["auto", "cpu", "cuda"],
                   help="(env PLLAVA_DEVICE)")
    p.add_argument("--host", default=env("PLLAVA_HOST", env("GRADIO_SERVER_NAME", "0.0.0.0" if on_space else "127.0.0.1")),
                   help="address to listen on (env PLLAVA_HOST, else GRADIO_SERVER_NAME; default 127.0.0.1, "
                        "0.0.0.0 on a Space)")
    p.add_argument("--port", type=int, default=int(env("PLLAVA_PORT", env("GRADIO_SERVER_PORT", 7860))),
                   help="(env PLLAVA_PORT)")
    p.add_argument("--share", action="store_true", default=env("PLLAVA_SHARE", "") == "1",
                   help="also serve through a public gradio.live link (env PLLAVA_SHARE=1)")
    p.add_argument("--max-file-size", type=float, default=float(env("PLLAVA_MAX_FILE_MB", 200)),
                   help="largest upload in MB (env PLLAVA_MAX_FILE_MB; default %(default)s)")
    p.add_argument("--max-duration", type=float, default=float(env("PLLAVA_MAX_DURATION_S", 3 * 3600)),
                   help="longest video in seconds (env PLLAVA_MAX_DURATION_S; default %(default)s)")
    p.add_argument("--max-frames", type=int, default=int(env("PLLAVA_MAX_FRAMES", 32)),
                   help="most frames sampled from a video (env PLLAVA_MAX_FRAMES; default %(default)s)")
    p.add_argument("--max-question-chars", type=int, default=int(env("PLLAVA_MAX_QUESTION_CHARS", 4000)),
                   help="longest question in characters (env PLLAVA_MAX_QUESTION_CHARS; default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=int(env("PLLAVA_MAX_NEW_TOKENS", 1024)),
                   help="longest answer in tokens (env PLLAVA_MAX_NEW_TOKENS; default %(default)s)")
    p.add_argument("--decode-time-budget", type=float, default=float(env("PLLAVA_DECODE_BUDGET_S", 60)),
                   help="seconds allowed to decode one video (env PLLAVA_DECODE_BUDGET_S; default %(default)s)")
    p.add_argument("--feature-cache-mb", type=float, default=float(env("PLLAVA_FEATURE_CACHE_MB", 2048)),
                   help="memory for encoded videos shared by all sessions, least recently used dropped first "
                        "(env PLLAVA_FEATURE_CACHE_MB; default %(default)s)")
    p.add_argument("--kv-cache-mb", type=float, default=float(env("PLLAVA_KV_CACHE_MB", 4096)),
                   help="memory for the sessions' KV caches, least recently used dropped first "
                        "(env PLLAVA_KV_CACHE_MB; default %(default)s)")
    p.add_argument("--upload-budget-mb", type=float, default=float(env("PLLAVA_UPLOAD_BUDGET_MB", 10240)),
                   help="disk for the upload folder in all; a full one answers 'the server is busy' "
                        "(env PLLAVA_UPLOAD_BUDGET_MB; default %(default)s)")
    p.add_argument("--upload-grace", type=float, default=float(env("PLLAVA_UPLOAD_GRACE_S", 300)),
                   help="seconds before a file no session holds (an unused upload, a thumbnail) is deleted "
                        "(env PLLAVA_UPLOAD_GRACE_S; default %(default)s)")
    p.add_argument("--max-pixels", type=int, default=int(env("PLLAVA_MAX_PIXELS", 7680 * 4320)),
                   help="most pixels in one frame or image, read from its header before decoding "
                        "(env PLLAVA_MAX_PIXELS; default %(default)s = 8K)")
    p.add_argument("--max-upload-files", type=int, default=int(env("PLLAVA_MAX_UPLOAD_FILES", 10_000)),
                   help="files in the upload folder in all (env PLLAVA_MAX_UPLOAD_FILES; default %(default)s)")
    p.add_argument("--max-files-per-upload", type=int, default=int(env("PLLAVA_MAX_FILES_PER_UPLOAD", 16)),
                   help="files in one upload request (env PLLAVA_MAX_FILES_PER_UPLOAD; default %(default)s)")
    p.add_argument("--max-request-kb", type=float, default=float(env("PLLAVA_MAX_REQUEST_KB", 1024)),
                   help="largest body of a request that is not an upload, refused before it is parsed "
                        "(env PLLAVA_MAX_REQUEST_KB; default %(default)s)")
    p.add_argument("--body-timeout", type=float, default=float(env("PLLAVA_BODY_TIMEOUT_S", 30)),
                   help="seconds a request body may send nothing before it is ended "
                        "(env PLLAVA_BODY_TIMEOUT_S; default %(default)s)")
    p.add_argument("--max-sessions", type=int, default=int(env("PLLAVA_MAX_SESSIONS", 256)),
                   help="live sessions; past it the least recently used is closed "
                        "(env PLLAVA_MAX_SESSIONS; default %(default)s)")
    p.add_argument("--upload-dir", default=env("PLLAVA_UPLOAD_DIR", ""),
                   help="the app's own folder for uploads and every file written for a visitor; emptied at "
                        "start (env PLLAVA_UPLOAD_DIR, else GRADIO_TEMP_DIR, else <tmp>/pllava-studio-<port>)")
    p.add_argument("--concurrency", type=int, default=int(env("PLLAVA_CONCURRENCY", 2)),
                   help="answers generated at once, decoded together as one batch (env PLLAVA_CONCURRENCY)")
    p.add_argument("--cpu-dtype", default=env("PLLAVA_CPU_DTYPE", "auto"), choices=["auto", "float32", "bfloat16"],
                   help="weights' dtype on CPU: auto = float32 where it fits in RAM, else bfloat16; bfloat16 is "
                        "faster to read prompts on CPUs with native bf16 (AMX, AVX512-BF16); the page says which "
                        "(env PLLAVA_CPU_DTYPE; default %(default)s)")
    p.add_argument("--max-queue", type=int, default=int(env("PLLAVA_MAX_QUEUE", 32)),
                   help="requests waiting at most (env PLLAVA_MAX_QUEUE)")
    p.add_argument("--threads", type=int, default=int(env("PLLAVA_THREADS", 0)),
                   help="CPU threads for torch; 0 = torch's choice (env PLLAVA_THREADS; on a busy CPU fewer is faster)")
    p.add_argument("--idle-timeout", type=float, default=float(env("PLLAVA_IDLE_TIMEOUT_S", 3600)),
                   help="seconds before an idle session's video and chat are freed (env PLLAVA_IDLE_TIMEOUT_S)")
    p.add_argument("--debug-stats", action="store_true",
                   help="add the engine's work counters to /status, for your own tests; never on a public server "
                        "(cache hits tell whether someone uploaded the same bytes)")
    from pllava_demo.openai_api.flags import add_flags

    add_flags(p)  # the OpenAI-compatible API under /v1: --no-openai-api, --api-key, media sources
    return p.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from pllava_demo.studio.zerogpu_runner import forks_per_call, import_early

    os.environ["GRADIO_TEMP_DIR"] = (args.upload_dir or os.environ.get("GRADIO_TEMP_DIR")
                                     or os.path.join(tempfile.gettempdir(), f"pllava-studio-{args.port}"))

    import_early()  # before anything imports torch's CUDA side
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    from pllava_demo.config import Limits
    from pllava_demo.ui import build_demo, launch
    from pllava_demo.studio.model_holder import ModelHolder

    limits = Limits(max_file_mb=args.max_file_size, max_duration_s=args.max_duration, max_frames=args.max_frames,
                    max_question_chars=args.max_question_chars, max_new_tokens=args.max_new_tokens,
                    decode_time_budget_s=args.decode_time_budget, feature_cache_mb=args.feature_cache_mb,
                    kv_cache_mb=args.kv_cache_mb, upload_budget_mb=args.upload_budget_mb,
                    upload_grace_s=args.upload_grace, max_pixels=args.max_pixels,
                    max_upload_files=args.max_upload_files, max_files_per_upload=args.max_files_per_upload,
                    max_request_kb=args.max_request_kb, body_timeout_s=args.body_timeout,
                    max_sessions=args.max_sessions)
    holder = ModelHolder(args.model, device=args.device, quantization=args.quantization, limits=limits,
                         expose_stats=args.debug_stats, cpu_dtype=args.cpu_dtype,
                         max_rows=args.concurrency, own_images=not forks_per_call()).start()
    demo = build_demo(holder, idle_timeout_s=args.idle_timeout, concurrency=args.concurrency, max_queue=args.max_queue)
    from pllava_demo.openai_api.flags import settings_from_args

    api = settings_from_args(args, max_file_mb=args.max_file_size, host=args.host, share=args.share,
                             concurrency=args.concurrency, max_queue=args.max_queue)
    if api is not None:  # the route allow-list serves /v1 too, with room for a video sent as base64
        from pllava_demo.openai_api import ROUTES
        from pllava_demo.ui.request_guard import allow_routes

        body = int(args.max_file_size * 2**20 * 4 / 3) + 2**20  # base64 of the largest upload, plus the JSON
        for route in ROUTES:
            allow_routes(route, ("GET", "POST"), max_body_bytes=body)
    launch(demo, host=args.host, port=args.port, share=args.share, max_file_mb=args.max_file_size,
           model_dir=args.model, prevent_thread_lock=api is not None)
    if api is not None:  # the /v1 routes on gradio's own app, then serve until stopped
        from pllava_demo.openai_api import mount

        mount(demo.app, holder, api)
        demo.block_thread()


if __name__ == "__main__":
    main()
