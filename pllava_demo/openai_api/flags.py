"""The API's flags, declared once for both doors (`python app.py` and `python -m pllava_demo serve`), each
with its PLLAVA_* environment variable, and the ApiSettings built from them.

Reads the environment only for defaults (called from the entry points' parsers); imports nothing heavy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_flags(p: argparse.ArgumentParser, *, with_off_switch: bool = True) -> None:
    env = os.environ.get
    if with_off_switch:
        p.add_argument("--no-openai-api", action="store_true", default=env("PLLAVA_NO_OPENAI_API", "") == "1",
                       help="do not serve the OpenAI-compatible API under /v1 (env PLLAVA_NO_OPENAI_API=1)")
    p.add_argument("--api-key", default=env("PLLAVA_API_KEY") or None,
                   help="require 'Authorization: Bearer KEY' on /v1 (env PLLAVA_API_KEY; default: no key)")
    p.add_argument("--allowed-media-dir", default=env("PLLAVA_ALLOWED_MEDIA_DIR") or None,
                   help="API media may be local paths inside this folder (env PLLAVA_ALLOWED_MEDIA_DIR; default: none)")
    p.add_argument("--allow-media-urls", action="store_true", default=env("PLLAVA_ALLOW_MEDIA_URLS", "") == "1",
                   help="API media may be http(s) URLs, fetched by the server (env PLLAVA_ALLOW_MEDIA_URLS=1)")
    p.add_argument("--media-timeout", type=float, default=float(env("PLLAVA_MEDIA_TIMEOUT_S", 30)),
                   help="seconds a media URL may take to connect and between reads (env PLLAVA_MEDIA_TIMEOUT_S; "
                        "default %(default)s)")


def settings_from_args(args, *, max_file_mb: float, host: str, share: bool = False, concurrency: int = 2,
                       max_queue: int = 32):
    """ApiSettings from the parsed flags; None when the API is turned off."""
    from .media import MediaPolicy
    from .service import ApiSettings

    if getattr(args, "no_openai_api", False):
        return None
    folder = Path(args.allowed_media_dir).expanduser() if args.allowed_media_dir else None
    if folder is not None and not folder.is_dir():
        raise SystemExit(f"--allowed-media-dir {folder} is not a folder.")
    media = MediaPolicy(max_mb=max_file_mb, allowed_dir=folder, allow_urls=bool(args.allow_media_urls),
                        timeout_s=args.media_timeout)
    return ApiSettings(api_key=args.api_key, media=media, concurrency=max(1, concurrency),
                       max_queue=max(0, max_queue), exposed=share or host not in LOOPBACK)
