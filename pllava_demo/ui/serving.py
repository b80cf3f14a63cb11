"""Serving the page safely: the folders it may serve (assets/ and gradio's upload folder), which
uploads are ours to delete, and the settings `launch` gives gradio."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from . import upload_guard as ui_guard
from . import handlers as H

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


def make_registry(demo_ref: list, examples: set[str]) -> H.Registry:
    """The studios of this server, deleting only files received through /upload (`demo_ref[0]` is
    the Blocks once built)."""

    def is_upload(path: str) -> bool:
        """Received through /upload, and not gradio's cached copy of an example (uploading an
        example's bytes gives the very same path, and that file must stay for everyone)."""
        return bool(demo_ref) and path in demo_ref[0].upload_file_set and str(Path(path).resolve()) not in examples

    def forget(path: str) -> None:  # deleted: gradio need not remember it
        if demo_ref:
            demo_ref[0].upload_file_set.discard(path)

    return H.Registry(H.Uploads(upload_folder(), is_upload, forget))


def launch_kwargs(*, host: str = "127.0.0.1", port: int = 7860, share: bool = False, max_file_mb: float = 200.0,
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


# Time you can click: the player seeks to a clicked frame's time (the gallery's select event hands it to
# window.pllavaSeek) or to a time link in an answer (`#t=<seconds>`, the only links the chat's answers have:
# time_links.py). One listener on the document, in the capture phase, so the link never navigates.
SEEK_JS = """() => {
    window.pllavaSeek = (t) => {
        const v = document.querySelector('#video-input video');
        if (v && Number.isFinite(t)) { v.pause(); v.currentTime = t; v.scrollIntoView({block: 'nearest'}); }
    };
    document.addEventListener('click', (e) => {
        const a = e.target.closest && e.target.closest('#chat a[href^="#t="]');
        if (!a) return;
        e.preventDefault();
        e.stopPropagation();
        window.pllavaSeek(parseFloat(a.getAttribute('href').slice(3)));
    }, true);
    // The skip link (the first Tab stop) puts the focus in the question box itself, not only the view there
    document.addEventListener('click', (e) => {
        if (!(e.target.closest && e.target.closest('a.skip-link'))) return;
        e.preventDefault();
        document.querySelector('#question textarea')?.focus();
    }, true);
    // After Send (or Enter), the answer is brought into view once it starts: on a phone the chat may
    // be above the screen by then (the keyboard, a scroll)
    const answerIntoView = () => {
        const chat = document.querySelector('#chat');
        if (!chat) return;
        const before = chat.querySelectorAll('[data-testid=bot]').length;
        const watch = new MutationObserver(() => {
            const bots = chat.querySelectorAll('[data-testid=bot]');
            if (bots.length <= before) return;
            watch.disconnect();
            bots[bots.length - 1].scrollIntoView({block: 'nearest'});
        });
        watch.observe(chat, {subtree: true, childList: true});
        setTimeout(() => watch.disconnect(), 120000);
    };
    document.addEventListener('click', (e) => {
        if (e.target.closest && e.target.closest('#send')) answerIntoView();
    }, true);
    document.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && e.target.closest && e.target.closest('#question')) answerIntoView();
    }, true);
    // Enter in a slider's number box commits it as leaving the box does: gradio then shows the
    // number clamped to the slider's range (the server clamps it too: events.quiet)
    document.addEventListener('keydown', (e) => {
        const box = e.target;
        if (e.key === 'Enter' && box.matches && box.matches('input[type=number]')
            && box.closest('.block')?.querySelector('input[type=range]')) box.blur();
    }, true);
    // No camera: say so where the camera would be, instead of a blank box that never starts
    const cameraNote = (text) => {
        document.querySelector('#no-camera')?.remove();
        const block = document.querySelector('#video-input');
        if (!text || !block) return;
        const note = document.createElement('p');
        note.id = 'no-camera';
        note.setAttribute('role', 'alert');
        note.textContent = text;
        block.after(note);  // under the box: inside it would cover its own buttons
    };
    document.addEventListener('click', async (e) => {
        const source = e.target.closest && e.target.closest('#video-input [data-testid=source-select] button');
        if (!source) return;
        if (source.getAttribute('aria-label') !== 'Capture from camera') { cameraNote(null); return; }
        if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
            cameraNote('The camera works only on a secure (https) page: upload a video file instead.');
            return;
        }
        const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
        cameraNote(devices.some((d) => d.kind === 'videoinput') ? null
                   : 'No camera was found on this device: upload a video file instead.');
    }, true);
}"""


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           max_file_mb: float = 200.0, model_dir: str | None = None, **kwargs):
    css = CSS_PATH.read_text() if CSS_PATH.exists() else None
    limits = getattr(demo, "guard_limits", None)
    if limits is not None:  # gradio's own per-session records: no more than our sessions
        kwargs.setdefault("state_session_capacity", int(limits.max_sessions))
    return demo.launch(**launch_kwargs(host=host, port=port, share=share, max_file_mb=max_file_mb, model_dir=model_dir),
                       theme=gr.themes.Soft(), css=css, js=SEEK_JS, app_kwargs=ui_guard.start(demo), **kwargs)
