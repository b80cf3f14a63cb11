"""The Gradio page of PLLaVA Studio: layout, events, queue and named API endpoints.

The only module that imports gradio. The work is done by the plain functions of `ui_handlers`;
this module wires components to them, turns `PllavaError`s into `gr.Error` and progress callbacks
into `gr.Progress`, and wraps GPU work for ZeroGPU. It knows nothing of argv (see app.py).

Named API endpoints (for gradio_client; per-client state, like a browser tab):
  /upload(file, num_frames) -> info      /chat(question) -> streamed answer text
  /set_options(changes: dict) -> info    /compare(changes: dict) -> {"a", "b", "labels"}
  /regenerate() -> answer   /clear() -> info   /info() -> info   /stop() -> stops this client's answer
  /status() -> model state, live sessions, cache sizes

Safety: the server serves only `assets/` and gradio's upload folder (allowed_paths), a session's
uploads are deleted when it ends, share links are off unless asked for, and no exception other
than a project error's one-line message ever reaches a user (the traceback goes to the log).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
from pathlib import Path

import gradio as gr

from . import ui_handlers as H
from . import ui_view as V
from .errors import PllavaError
from .zerogpu import gpu, gpu_duration

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GPU = "gpu"  # one concurrency group for everything that runs the model or CLIP
CSS_PATH = ASSETS / "style.css"


UNEXPECTED = "Something went wrong on the server; please try again (the details are in the server log)."


def _error(e: Exception, name: str) -> gr.Error:
    """Any exception -> the one-line gr.Error a user sees. Project errors are written for people and
    shown as they are; anything else is a bug or a library failure: logged with its traceback here,
    and the user gets a generic sentence (no paths, no library internals)."""
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, PllavaError):
        return gr.Error(H.one_line(e), print_exception=False)
    log.error("unexpected error in %s", name, exc_info=e)
    return gr.Error(UNEXPECTED, print_exception=False)


def guard(fn):
    """Every exception becomes a readable gr.Error, for plain and generator handlers alike."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise _error(e, fn.__name__) from None
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise _error(e, fn.__name__) from None
    return plain


def upload_folder() -> Path:
    """Where gradio writes uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), as gradio itself decides."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(gr.utils.get_upload_folder())).resolve()


def _progress(progress):
    return (lambda frac, text: progress(frac, desc=text)) if progress is not None else None


# -- GPU work: the only functions ZeroGPU must wrap -------------------------------------------
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


def _cached_copy(path: Path) -> str:
    """Where gradio keeps its copy of a file it serves: <upload folder>/<seeded content hash>/<name>."""
    from gradio import processing_utils
    from gradio_client.utils import strip_invalid_filename_characters

    folder = upload_folder() / processing_utils.hash_file(path)
    return str((folder / strip_invalid_filename_characters(path.name)).resolve())


# -- the page ----------------------------------------------------------------------------------
def build_demo(holder: H.ModelHolder, *, idle_timeout_s: float = 3600.0, concurrency: int = 2,
               max_queue: int = 32) -> gr.Blocks:
    limits = holder.limits
    demo_ref: list[gr.Blocks] = []

    examples_cached = {_cached_copy(p) for p in ASSETS.iterdir() if p.is_file()}

    def is_upload(path: str) -> bool:
        """Received through /upload, and not gradio's cached copy of an example (uploading an
        example's bytes gives the very same path, and that file must stay for everyone)."""
        return bool(demo_ref) and path in demo_ref[0].upload_file_set and str(Path(path).resolve()) not in examples_cached

    def forget(path: str) -> None:  # deleted: gradio need not remember it
        if demo_ref:
            demo_ref[0].upload_file_set.discard(path)

    registry = H.Registry(H.Uploads(upload_folder(), is_upload, forget))
    examples = sorted(str(p) for p in ASSETS.glob("*.mp4"))

    with gr.Blocks(title="PLLaVA Studio") as demo:
        demo_ref.append(demo)
        state = gr.State(None, time_to_live=idle_timeout_s, delete_callback=registry.discard)
        gr.Markdown("# PLLaVA Studio\nTalk with a video, and watch what frames, pooling and LoRA alpha "
                    "change in what the model sees and says.")
        status = gr.Markdown(holder.status_markdown(), elem_id="model-status")

        with gr.Row():
            with gr.Column(scale=5):
                with gr.Tabs():
                    with gr.Tab("Video"):
                        video = gr.Video(sources=["upload", "webcam"], label="Video (mp4, webm, mov, mkv)",
                                         elem_id="video-input", height=260)
                    with gr.Tab("Image or GIF"):
                        upload = gr.File(label="A still image, a GIF or any video file", elem_id="file-input",
                                         file_types=list(H.VIDEO_TYPES + H.IMAGE_TYPES))
                if examples:
                    gr.Examples(examples=[[p] for p in examples], inputs=[video], label="Example videos")
                frames = gr.Slider(4, limits.max_frames, value=16, step=1, label="Frames",
                                   info="How many frames are sampled (one per equal segment of the video).",
                                   elem_id="frames-slider")
                gr.Markdown("**Pooling T' × h' × w'**: the video's 24×24 tokens per frame are averaged down to "
                            "T' time steps (never above the frames) of h'×w' tokens: fewer tokens, less detail.",
                            elem_classes=["slider-note"])
                with gr.Row():
                    pool_t = gr.Slider(1, 16, value=16, step=1, label="T' (time)", elem_id="pool-t")
                    pool_h = gr.Slider(1, 24, value=12, step=1, label="h' (rows)", elem_id="pool-h")
                    pool_w = gr.Slider(1, 24, value=12, step=1, label="w' (columns)", elem_id="pool-w")
                alpha = gr.Slider(0, 32, value=4, step=0.5, label="LoRA alpha", elem_id="alpha",
                                  info="Strength of the video LoRA: 4 is official, 0 is the image model alone.")
                with gr.Accordion("Generation", open=False):
                    do_sample = gr.Checkbox(False, label="Sampling", info="Off: greedy, the same answer every time.")
                    temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature",
                                            info="Higher is more varied (only with sampling).")
                    top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p",
                                      info="Sample from the smallest set of tokens with this much probability.")
                    max_new = gr.Slider(1, limits.max_new_tokens, value=min(512, limits.max_new_tokens), step=1, elem_id="max-new",
                                        label="Max new tokens", info="Longest answer, in tokens.")
                    rep = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Repetition penalty",
                                    info="Above 1 discourages repeating words.")
                    system = gr.Textbox(H.DEFAULT_SYSTEM, lines=4, label="System prompt",
                                        info="Instructions given before the video.")

            with gr.Column(scale=6):
                chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=440, buttons=["copy"])
                with gr.Row():
                    msg = gr.Textbox(placeholder="Ask about the video…", show_label=False, scale=5,
                                     elem_id="question", submit_btn=False)
                    # While an answer streams, Send becomes Stop (one place, one button to press)
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop", visible=False)
                with gr.Row():
                    regen = gr.Button("Regenerate", size="sm", elem_id="regenerate")
                    clear = gr.Button("Clear chat", size="sm", elem_id="clear")
                    new_video = gr.Button("New video", size="sm", elem_id="new-video")

        with gr.Accordion("See what the model sees", open=True):
            view_md = gr.Markdown("Upload a video to see the frames and visual tokens the model gets.",
                                  elem_id="view-info")
            with gr.Row():
                gallery = gr.Gallery(label="Sampled frames", columns=8, height=230, elem_id="frames",
                                     object_fit="contain", scale=3)
                heatmap = gr.Image(label="Token norms per pooled frame (bright = high norm)", type="pil",
                                   elem_id="heatmap", height=230, scale=2, interactive=False)

        with gr.Accordion("Compare: re-ask the last question with other settings", open=False):
            gr.Markdown("A is the current settings; B changes only what you set here (same video, same earlier turns).")
            with gr.Row():
                alpha_b = gr.Slider(0, 32, value=20, step=0.5, label="B: LoRA alpha")
                pool_h_b = gr.Slider(1, 24, value=6, step=1, label="B: pooling h'")
                pool_w_b = gr.Slider(1, 24, value=6, step=1, label="B: pooling w'")
                compare_btn = gr.Button("Compare", variant="secondary", elem_id="compare")
            with gr.Row():
                answer_a = gr.Markdown(elem_id="compare-a")
                answer_b = gr.Markdown(elem_id="compare-b")

        # hidden inputs/outputs of the API-only endpoints
        with gr.Group(visible=False):
            api_file = gr.File()
            api_frames = gr.Number(16, precision=0)
            api_question = gr.Textbox()
            api_changes = gr.JSON()
            api_answer = gr.Textbox()
            api_info = gr.JSON()

        option_inputs = [frames, pool_t, pool_h, pool_w, alpha, do_sample, temperature, top_p, max_new, rep, system]

        def changes_from(values) -> dict:
            f, t, h, w, a, s, temp, tp, mx, rp, sysmsg = values
            return dict(num_frames=int(f), pooling=(int(t), int(h), int(w)), lora_alpha=a, do_sample=bool(s),
                        temperature=temp, top_p=tp, max_new_tokens=int(mx), repetition_penalty=rp, system=sysmsg)

        def studio_for(studio, request: gr.Request | None):
            return H.ensure_studio(studio, holder, registry, getattr(request, "session_hash", None))

        def view(studio, with_gallery=True):
            out = [V.view_markdown(studio), V.token_heatmap(studio)]
            return ([V.gallery_items(studio)] if with_gallery else []) + out

        # -- model status, and slider ranges from the checkpoint ---------------------------------
        @guard
        def on_page_load(progress=gr.Progress()):
            while not holder.wait(0.5):
                progress(None, desc=f"Loading the model: {holder.stage} ({holder.elapsed:.0f} s)")
            if holder.engine is None:
                gr.Warning(f"The model failed to load: {holder.error}")
                return [holder.status_markdown()] + [gr.update()] * 6
            eng, opts = holder.engine, H.default_options(holder.engine)
            has_lora = eng.spec.has_lora
            return [holder.status_markdown(),
                    gr.update(value=opts.num_frames),
                    gr.update(value=opts.pooling[0], maximum=opts.num_frames),
                    gr.update(value=opts.pooling[1], maximum=eng.spec.frame_grid[0]),
                    gr.update(value=opts.pooling[2], maximum=eng.spec.frame_grid[1]),
                    gr.update(value=opts.lora_alpha if has_lora else 0, interactive=has_lora,
                              info=None if has_lora else "This checkpoint has no LoRA weights: alpha does nothing."),
                    gr.update(value=opts.max_new_tokens)]

        demo.load(on_page_load, None, [status, frames, pool_t, pool_h, pool_w, alpha, max_new],
                  concurrency_limit=None, api_visibility="private")

        # -- video -------------------------------------------------------------------------------
        @guard
        def on_video(path, studio, *values, request: gr.Request = None, progress=gr.Progress()):
            studio = studio_for(studio, request)
            if not path:  # the video was removed: start over
                studio.close()
                return [studio, [], *view(studio)]
            if path != studio.video_path:
                studio.stop.set()  # an answer about the old video ends now; it will not join the new chat
            H.set_options(studio, **{k: v for k, v in changes_from(values).items() if k != "num_frames"})
            _adopt(studio, _gpu_load(studio, path, int(values[0]), _progress(progress)))
            return [studio, H.history(studio), *view(studio)]

        view_outputs = [gallery, view_md, heatmap]
        for component in (video, upload):
            component.change(on_video, [component, state, *option_inputs], [state, chatbot, *view_outputs],
                             concurrency_id=GPU, api_visibility="private", trigger_mode="always_last")

        # -- sliders: the frames slider re-encodes, the others only re-pool -------------------------
        @guard
        def on_frames(studio, *values, request: gr.Request = None, progress=gr.Progress()):
            t_update = gr.update(maximum=int(values[0]), value=min(int(values[1]), int(values[0])))
            if studio is None and holder.engine is None:
                return [studio, t_update, gr.update(), gr.update(), gr.update()]
            studio = studio_for(studio, request)
            _adopt(studio, _gpu_options(studio, _progress(progress), **changes_from(values)))
            return [studio, t_update, *view(studio)]

        frames.change(on_frames, [state, *option_inputs], [state, pool_t, *view_outputs],
                      concurrency_id=GPU, api_visibility="private", trigger_mode="always_last")

        def apply_options(studio, values, request):
            studio = studio_for(studio, request)
            changes = changes_from(values)
            if studio.video is not None and changes["num_frames"] != studio.video.num_frames:
                changes.pop("num_frames")  # the frames slider's own event re-encodes
            return H.set_options(studio, **changes)

        @guard
        def on_pooling(studio, *values, request: gr.Request = None):
            if studio is None and holder.engine is None:
                return [studio, gr.update(), gr.update()]
            studio = apply_options(studio, values, request)
            return [studio, *view(studio, with_gallery=False)]  # new token grid: re-pool for the heat map

        @guard
        def on_settings(studio, *values, request: gr.Request = None):
            if studio is None and holder.engine is None:
                return [studio, gr.update()]
            studio = apply_options(studio, values, request)
            return [studio, V.view_markdown(studio)]  # alpha and generation settings leave the token grid as it is

        view_kw = dict(concurrency_limit=4, concurrency_id="view", api_visibility="private",
                       trigger_mode="always_last", show_progress="hidden")
        for component in (pool_t, pool_h, pool_w):
            component.change(on_pooling, [state, *option_inputs], [state, view_md, heatmap], **view_kw)
        for component in (alpha, do_sample, temperature, top_p, max_new, rep, system):
            component.change(on_settings, [state, *option_inputs], [state, view_md], **view_kw)

        # -- chat --------------------------------------------------------------------------------
        # While an answer streams: Send is replaced by Stop, Regenerate and Compare are off, and Enter
        # or Send do nothing (one event for both, trigger_mode "once"): a follow-up typed meanwhile
        # stays in the box. The box is cleared once, when a question is accepted.
        answering = [gr.update(visible=False), gr.update(visible=True), gr.update(interactive=False),
                     gr.update(interactive=False)]
        controls = [send, stop, regen, compare_btn]

        def on_idle():
            return gr.update(visible=True), gr.update(visible=False), gr.update(interactive=True), \
                gr.update(interactive=True)

        @guard
        def on_chat(question, studio, *values, request: gr.Request = None, regenerate=False):
            studio = studio_for(studio, request)
            changes = changes_from(values)
            if studio.video is not None and changes["num_frames"] != studio.video.num_frames:
                changes.pop("num_frames")
            H.set_options(studio, **changes)
            first = True
            for messages in H.chat_stream(studio, question, regenerate, stream=_gpu_stream):
                box = gr.skip() if regenerate or not first else ""
                yield box, messages, studio, *(answering if first else [gr.skip()] * 4)
                first = False
            if studio.session.notice:
                gr.Info(studio.session.notice)

        def on_regenerate(studio, *values, request: gr.Request = None):
            yield from on_chat("", studio, *values, request=request, regenerate=True)

        chat_kw = dict(concurrency_id=GPU, api_visibility="private", trigger_mode="once")
        gr.on([msg.submit, send.click], on_chat, [msg, state, *option_inputs], [msg, chatbot, state, *controls],
              **chat_kw).then(on_idle, None, controls, queue=False)
        regen.click(on_regenerate, [state, *option_inputs], [msg, chatbot, state, *controls],
                    **chat_kw).then(on_idle, None, controls, queue=False)

        def on_stop(studio):
            if studio is not None:
                studio.stop.set()

        stop.click(on_stop, [state], None, concurrency_limit=None, api_visibility="private", queue=False)

        def on_clear(studio):
            if studio is not None:
                studio.stop.set()  # an answer still streaming ends; clear() keeps it out of the new chat
                studio.session.clear()
            return [], "", ""

        clear.click(on_clear, [state], [chatbot, answer_a, answer_b], concurrency_limit=None, api_visibility="private")
        # the chat's own trash icon: the model forgets too, not only the screen
        chatbot.clear(on_clear, [state], [chatbot, answer_a, answer_b], concurrency_limit=None,
                      api_visibility="private")

        def on_new_video(studio):
            if studio is not None:
                studio.close()
            return None, None, [], [], V.view_markdown(studio) if studio else "", None, "", ""

        new_video.click(on_new_video, [state], [video, upload, chatbot, gallery, view_md, heatmap, answer_a, answer_b],
                        concurrency_limit=None, api_visibility="private")

        # -- compare -----------------------------------------------------------------------------
        @guard
        def on_compare(studio, a_b, h_b, w_b, *values, request: gr.Request = None):
            studio = studio_for(studio, request)
            H.set_options(studio, **{k: v for k, v in changes_from(values).items() if k != "num_frames"})
            t = studio.options.pooling[0]
            changes = dict(pooling=(t, int(h_b), int(w_b)))
            if studio.engine.spec.has_lora:
                changes["lora_alpha"] = a_b
            for la, a, lb, b in _gpu_compare(studio, **changes):
                yield f"**{la}**\n\n{a}", f"**{lb}**\n\n{b}"

        compare_btn.click(on_compare, [state, alpha_b, pool_h_b, pool_w_b, *option_inputs], [answer_a, answer_b],
                          concurrency_id=GPU, api_visibility="private")

        # -- the named API (gradio_client) -------------------------------------------------------
        @guard
        def api_upload(file, num_frames, studio, request: gr.Request = None, progress=gr.Progress()):
            studio = studio_for(studio, request)
            _adopt(studio, _gpu_load(studio, file, int(num_frames) if num_frames else None, _progress(progress)))
            return V.video_info(studio), studio

        @guard
        def api_set_options(changes, studio, request: gr.Request = None, progress=gr.Progress()):
            studio = studio_for(studio, request)
            _adopt(studio, _gpu_options(studio, _progress(progress), **dict(changes or {})))
            return V.video_info(studio), studio

        @guard
        def api_chat(question, studio, request: gr.Request = None):
            studio = studio_for(studio, request)
            for text in H.answer(studio, question, stream=_gpu_stream):
                yield text, studio

        @guard
        def api_regenerate(studio, request: gr.Request = None):
            studio = studio_for(studio, request)
            for text in H.answer(studio, None, regenerate=True, stream=_gpu_stream):
                yield text, studio

        @guard
        def api_compare(changes, studio, request: gr.Request = None):
            studio = studio_for(studio, request)
            out = None
            for la, a, lb, b in _gpu_compare(studio, **dict(changes or {})):
                out = {"labels": [la, lb], "a": a, "b": b}
                yield out, studio

        @guard
        def api_clear(studio, request: gr.Request = None):
            studio = studio_for(studio, request)
            studio.stop.set()
            studio.session.clear()
            return V.video_info(studio), studio

        @guard
        def api_info_fn(studio, request: gr.Request = None):
            studio = studio_for(studio, request)
            return {**V.video_info(studio), "turns": [dataclasses.asdict(t) for t in studio.session.turns]}, studio

        def api_status():
            return H.server_status(holder, registry)

        def api_stop(request: gr.Request = None):
            studio = registry.get(getattr(request, "session_hash", None))
            if studio is not None:
                studio.stop.set()
            return {"stopped": studio is not None}

        hidden = gr.Button(visible=False)
        hidden.click(api_status, None, [api_info], api_name="status", concurrency_limit=None)
        hidden.click(api_upload, [api_file, api_frames, state], [api_info, state], api_name="upload", concurrency_id=GPU)
        hidden.click(api_set_options, [api_changes, state], [api_info, state], api_name="set_options", concurrency_id=GPU)
        hidden.click(api_chat, [api_question, state], [api_answer, state], api_name="chat", concurrency_id=GPU)
        hidden.click(api_regenerate, [state], [api_answer, state], api_name="regenerate", concurrency_id=GPU)
        hidden.click(api_compare, [api_changes, state], [api_info, state], api_name="compare", concurrency_id=GPU)
        hidden.click(api_clear, [state], [api_info, state], api_name="clear", concurrency_limit=None)
        hidden.click(api_info_fn, [state], [api_info, state], api_name="info", concurrency_limit=None)
        # not queued: it must reach a stream that is running while the queue is full
        hidden.click(api_stop, None, [api_info], api_name="stop", queue=False)

        def on_unload(request: gr.Request):
            key = getattr(request, "session_hash", None)
            registry.close(key)
            # gradio keeps a closed session's record (a copy of the page's config, ~1 MB here) for an
            # hour in case the tab comes back; ours never do (a reload is a new session): drop it now.
            holder_ = getattr(demo, "state_holder", None)
            if key and holder_ is not None:
                with holder_.lock:
                    holder_.session_data.pop(key, None)
                    holder_.time_last_used.pop(key, None)

        demo.unload(on_unload)

    # GPU events share one group at the default limit: `concurrency` streams interleave per token.
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    demo.registry = registry
    return demo


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


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           max_file_mb: float = 200.0, model_dir: str | None = None, **kwargs):
    css = CSS_PATH.read_text() if CSS_PATH.exists() else None
    return demo.launch(**launch_kwargs(host=host, port=port, share=share, max_file_mb=max_file_mb, model_dir=model_dir),
                       theme=gr.themes.Soft(), css=css, **kwargs)
