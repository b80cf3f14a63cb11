"""`python -m pllava_demo serve`: the OpenAI-compatible API alone (no page), on uvicorn.

The model loads in the background as for the page (503 until it is ready); the model, server and limit
flags are the page's (settings.py), on port 8000. Registered in cli.py with `add_parser(sub)`; reads only
its own parsed flags.
"""

from __future__ import annotations

import argparse

from ..settings import LIMITS, SERVER
from ..settings import add_flags as add_settings
from .flags import add_flags


def add_parser(sub) -> None:
    from ..cli import _model_args

    p = sub.add_parser("serve", help="serve the OpenAI-compatible chat API (no page) on http://127.0.0.1:8000/v1")
    _model_args(p)
    add_settings(p, [*SERVER.values(), *LIMITS.values()], port=8000)  # the page's limits, same flags
    add_flags(p, with_off_switch=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from ..config import Limits
    from ..studio.model_holder import ModelHolder
    from . import mount
    from .flags import settings_from_args

    holder = ModelHolder(args.model, device=args.device, quantization=args.quantization, lora_alpha=args.lora_alpha,
                         limits=Limits.from_args(args), cpu_dtype=args.cpu_dtype, max_rows=args.concurrency).start()
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
