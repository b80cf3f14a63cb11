"""The work that runs the model or CLIP: the only functions ZeroGPU must wrap (`zerogpu.gpu`).
Under ZeroGPU they run in a worker process on a copy of the studio: `adopt` keeps the video they
return, and `ui_handlers.answer` hands a streamed turn to the session (`ChatSession.keep_answer`)."""

from __future__ import annotations

from .. import ui_handlers as H
from ..zerogpu import gpu, gpu_duration


def progress_fn(progress):
    return (lambda frac, text: progress(frac, desc=text)) if progress is not None else None


@gpu(lambda studio, path, num_frames, progress=None: gpu_duration(num_frames or studio.options.num_frames, 1))
def _gpu_load(studio, path, num_frames, progress=None):
    H.load_video(studio, path, num_frames, progress)
    return studio.video


@gpu(lambda studio, progress=None, **changes: gpu_duration(changes.get("num_frames", 16), 1))
def _gpu_options(studio, progress=None, **changes):
    H.set_options(studio, progress, **changes)
    return studio.video


@gpu(lambda studio, question, regenerate=False: gpu_duration(studio.options.num_frames, studio.options.max_new_tokens))
def _gpu_stream(studio, question, regenerate=False):
    yield from H.stream_answer(studio, question, regenerate)


@gpu(lambda studio, **changes: gpu_duration(studio.options.num_frames, studio.options.max_new_tokens, answers=2))
def _gpu_compare(studio, **changes):
    yield from H.compare(studio, **changes)


def _adopt(studio, vf) -> None:
    """Under ZeroGPU the GPU function runs in a worker process: keep what it returned."""
    if vf is not None and studio.session.video is not vf:
        if studio.session.video is None or studio.session.video.clip.content_key != vf.clip.content_key:
            studio.session.clear()  # a new file starts a new chat (and ends any answer about the old one)
        studio.session.video = vf


def load(studio, path, num_frames=None, progress=None) -> None:
    _adopt(studio, _gpu_load(studio, path, num_frames, progress_fn(progress)))


def options(studio, progress=None, **changes) -> None:
    _adopt(studio, _gpu_options(studio, progress_fn(progress), **changes))


stream = _gpu_stream
compare = _gpu_compare
