"""Serving the page safely: the folders it may serve (assets/ and gradio's upload folder), which
uploads are ours to delete, and the settings `launch` gives gradio."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from ..settings import LIMITS, SERVER
from ..studio.registry import Registry
from . import upload_guard as ui_guard
from .files import Uploads

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
CSS_PATH = ASSETS / "style.css"


def upload_folder() -> Path:
    """Where gradio writes uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), as gradio itself decides."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(gr.utils.get_upload_folder())).resolve()


def _cached_copy(path: Path) -> str:
    """Where gradio keeps its copy of a file it serves: <upload folder>/<seeded content hash>/<name>."""
    from gradio import processing_utils
    from gradio_client.utils import strip_invalid_filename_characters

    folder = upload_folder() / processing_utils.hash_file(path)
    return str((folder / strip_invalid_filename_characters(path.name)).resolve())


def examples_cached() -> set[str]:
    """gradio's cached copies of the shipped examples: shared by everyone, never deleted."""
    return {_cached_copy(p) for p in ASSETS.iterdir() if p.is_file()}


def make_registry(demo_ref: list, examples: set[str], holder=None, runner=None) -> Registry:
    """The tabs of this server, on `holder`'s model through `runner`, deleting only files received
    through /upload (`demo_ref[0]` is the Blocks once built)."""

    def is_upload(path: str) -> bool:
        """Received through /upload, and not gradio's cached copy of an example (uploading an
        example's bytes gives the very same path, and that file must stay for everyone)."""
        return bool(demo_ref) and path in demo_ref[0].upload_file_set and str(Path(path).resolve()) not in examples

    def forget(path: str) -> None:  # deleted: gradio need not remember it
        if demo_ref:
            demo_ref[0].upload_file_set.discard(path)

    return Registry(holder, runner, Uploads(upload_folder(), is_upload, forget))


_HOST, _PORT, _MAX_FILE_MB = SERVER["host"].default, SERVER["port"].default, LIMITS["max_file_mb"].default


def launch_kwargs(*, host: str = _HOST, port: int = _PORT, share: bool = False, max_file_mb: float = _MAX_FILE_MB,
                  model_dir: str | None = None) -> dict:
    """What `launch` gives gradio: served files limited to assets/ (plus gradio's own upload folder),
    the model's folder blocked outright, gradio refusing oversize uploads before they reach the disk,
    and no tracebacks in error messages (show_error=False: gr.Error messages still show)."""
    blocked = []
    if model_dir and Path(model_dir).is_dir():
        model = Path(model_dir).resolve()
        if not any(p.is_relative_to(model) for p in (ASSETS, upload_folder())):  # never block what we serve
            blocked.append(str(model))
    return dict(server_name=host, server_port=port, share=bool(share), max_file_size=int(max_file_mb * 2**20),
                allowed_paths=[str(ASSETS)], blocked_paths=blocked, show_error=False)


from .page_js import PAGE_JS as SEEK_JS  # noqa: E402  (the page's script: its own file, #22)


def launch(demo: gr.Blocks, *, host: str = _HOST, port: int = _PORT, share: bool = False,
           max_file_mb: float = _MAX_FILE_MB, model_dir: str | None = None, **kwargs):
    css = CSS_PATH.read_text() if CSS_PATH.exists() else None
    limits = getattr(demo, "guard_limits", None)
    if limits is not None:  # gradio's own per-session records: no more than our sessions
        kwargs.setdefault("state_session_capacity", int(limits.max_sessions))
    return demo.launch(**launch_kwargs(host=host, port=port, share=share, max_file_mb=max_file_mb, model_dir=model_dir),
                       theme=gr.themes.Soft(), css=css, js=SEEK_JS, app_kwargs=ui_guard.start(demo), **kwargs)
