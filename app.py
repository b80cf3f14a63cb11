"""PLLaVA Studio: `python app.py` serves the Gradio app on http://127.0.0.1:7860.

Thin entry point: flags (built from pllava_demo/settings.py, each with its PLLAVA_* environment
fallback, so a Space configures it by variables) -> start loading the model in the background -> build the page -> launch.
"""

import argparse
import logging
import os
import tempfile

from pllava_demo.settings import LIMITS, MODEL, PAGE, SERVER, add_flags


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of settings.py's tables; the page listens on 0.0.0.0 on a Space, and takes gradio's own
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT where PLLAVA_HOST / PLLAVA_PORT are not set."""
    on_space = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(description="PLLaVA Studio: chat with a video in the browser.")
    add_flags(p, [*MODEL.values(), *SERVER.values(), *PAGE.values(), *LIMITS.values()],
              host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if on_space else SERVER["host"].default),
              port=os.environ.get("GRADIO_SERVER_PORT", SERVER["port"].default))
    from pllava_demo.openai_api.flags import add_flags as add_api_flags

    add_api_flags(p)  # the OpenAI-compatible API under /v1: --no-openai-api, --api-key, media sources
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

    holder = ModelHolder(args.model, device=args.device, quantization=args.quantization, limits=Limits.from_args(args),
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
