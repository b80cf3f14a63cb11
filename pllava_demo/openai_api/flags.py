"""The API's flags for both doors (`python app.py` and `python -m pllava_demo serve`), from the settings
table (settings.API: each with its PLLAVA_* environment variable), and the ApiSettings built from them.

Reads the environment only for defaults (called from the entry points' parsers); imports nothing heavy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..settings import API, SERVER
from ..settings import add_flags as add_settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_flags(p: argparse.ArgumentParser, *, with_off_switch: bool = True) -> None:
    """The API's flags (settings.API); `serve` has no --no-openai-api: the API is all it serves."""
    add_settings(p, [s for s in API.values() if with_off_switch or s.name != "no_openai_api"])


def settings_from_args(args, *, max_file_mb: float, host: str, share: bool = False,
                       concurrency: int = SERVER["concurrency"].default, max_queue: int = SERVER["max_queue"].default):
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
