"""`python -m pllava_demo serve`: the OpenAI-compatible API alone (no page), on uvicorn.

The model loads in the background as for the page (503 until it is ready). Registered in cli.py
with `add_parser(sub)`; reads only its own parsed flags.
"""

from __future__ import annotations

import argparse
import os

from .flags import add_flags


def add_parser(sub) -> None:
    from ..cli import _model_args

    env = os.environ.get
    p = sub.add_parser("serve", help="serve the OpenAI-compatible chat API (no page) on http://127.0.0.1:8000/v1")
    _model_args(p)
    p.add_argument("--host", default=env("PLLAVA_HOST", "127.0.0.1"), help="(env PLLAVA_HOST; default %(default)s)")
    p.add_argument("--port", type=int, default=int(env("PLLAVA_PORT", 8000)), help="(env PLLAVA_PORT; default %(default)s)")
    p.add_argument("--concurrency", type=int, default=int(env("PLLAVA_CONCURRENCY", 2)),
                   help="answers decoded together (env PLLAVA_CONCURRENCY; default %(default)s)")
    p.add_argument("--max-queue", type=int, default=int(env("PLLAVA_MAX_QUEUE", 32)),
                   help="requests waiting at most; one more gets 429 (env PLLAVA_MAX_QUEUE; default %(default)s)")
    p.add_argument("--max-file-size", type=float, default=float(env("PLLAVA_MAX_FILE_MB", 200)),
                   help="largest media file in MB (env PLLAVA_MAX_FILE_MB; default %(default)s)")
    p.add_argument("--max-frames", type=int, default=int(env("PLLAVA_MAX_FRAMES", 32)),
                   help="most frames sampled (env PLLAVA_MAX_FRAMES; default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=int(env("PLLAVA_MAX_NEW_TOKENS", 1024)),
                   help="longest answer (env PLLAVA_MAX_NEW_TOKENS; default %(default)s)")
    add_flags(p, with_off_switch=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from ..config import Limits
    from ..ui.handlers import ModelHolder
    from . import mount
    from .flags import settings_from_args

    limits = Limits(max_file_mb=args.max_file_size, max_frames=args.max_frames, max_new_tokens=args.max_new_tokens)
    holder = ModelHolder(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         limits=limits, cpu_dtype=args.cpu_dtype, max_rows=args.concurrency).start()
    settings = settings_from_args(args, max_file_mb=args.max_file_size, host=args.host,
                                  concurrency=args.concurrency, max_queue=args.max_queue)
    app = FastAPI(title="PLLaVA Studio API", docs_url=None, redoc_url=None, openapi_url=None)
    mount(app, holder, settings)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if holder.engine is not None:  # never exit while the scheduler's thread is inside torch
            holder.engine.scheduler.wait_idle()
    return 0
