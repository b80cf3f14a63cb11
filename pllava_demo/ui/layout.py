"""The page's components and where they sit, and nothing else: no handlers here.

Order is for a person: the video, the chat and the question box come first (on a phone that is
all of the first screen, the settings folded: events.on_viewport); the knobs sit beside the picture
of what the model sees, so moving a slider shows its effect in view (at 1440x900 the sliders, the
panel text and all the sampled frames fit on one screen). Each section is one small function, and
each component a handler touches is a named field of `Page`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..frames import strategies
from ..settings import GENERATION, IMAGE_EXTENSIONS, NUM_FRAMES, UPLOAD_VIDEO_EXTENSIONS
from . import chapters_view
from ..chat.prompt import DEFAULT_SYSTEM
from ..studio.model_holder import ModelHolder
from .page_state import INITIAL as INITIAL_STATE

# Each example teaches: a name, and a question worth asking of it (one click loads both).
EXAMPLES = {
    "bouncing_ball.mp4": ("Bouncing ball", "Where does the ball go, and how many times does it bounce?"),
    "colour_change.mp4": ("Colour change", "Which colours does the picture show, in order?"),
    "moving_car.mp4": ("Moving car", "Which way is the car moving?"),
}
HEATMAP_ALT = ("Heat map of the visual tokens' feature norms: one tile per pooled time step, one square per "
               "token, purple for low norms and yellow for high, with the colour scale underneath.")


@dataclass
class Page:
    """Every component a handler reads or writes, by name."""

    state: gr.State
    viewport: gr.Number
    status: gr.Markdown
    notice: gr.Markdown
    video: gr.Video
    upload: gr.File
    examples: gr.Examples | None
    chatbot: gr.Chatbot
    msg: gr.Textbox
    send: gr.Button
    stop: gr.Button
    regen: gr.Button
    clear: gr.Button
    new_video: gr.Button
    download: gr.Button
    chat_files: gr.File
    settings: gr.Accordion
    frames: gr.Slider
    start: gr.Textbox
    end: gr.Textbox
    from_frame: gr.Button
    to_frame: gr.Button
    whole: gr.Button
    pool_t: gr.Slider
    pool_h: gr.Slider
    pool_w: gr.Slider
    alpha: gr.Slider
    do_sample: gr.Checkbox
    temperature: gr.Slider
    top_p: gr.Slider
    max_new: gr.Slider
    rep: gr.Slider
    system: gr.Textbox
    view_md: gr.Markdown
    seek: gr.Number
    gallery: gr.Gallery
    heatmap: gr.Image
    alpha_b: gr.Slider
    pool_h_b: gr.Slider
    pool_w_b: gr.Slider
    compare_btn: gr.Button
    answer_a: gr.Markdown
    answer_b: gr.Markdown
    strategy: gr.Dropdown  # the visual-token strategy (strategies.py), beside the frames
    pool_row: gr.Row  # PLLaVA's own knobs, shown while it is chosen
    knobs: dict  # every other strategy's knobs, by field name: gr.Slider each (shown with their strategy)
    strategy_image: gr.Image  # the image a strategy makes (IG-VLM's grid, TS-LLaVA's thumbnail)
    strategy_b: gr.Dropdown  # Compare's B strategy ("" = the same as A)
    chapters: "chapters_view.ChapterPage | None" = None  # the chapter list and its controls
    page_state: gr.HTML = None  # the page's state for machines (page_state.py): answering, turns, last event

    @property
    def options(self) -> dict:
        """The components whose values are the session's Options, by Options field."""
        return dict(num_frames=self.frames, strategy=self.strategy, pool_t=self.pool_t, pool_h=self.pool_h,
                    pool_w=self.pool_w, **self.knobs, lora_alpha=self.alpha, do_sample=self.do_sample, temperature=self.temperature,
                    top_p=self.top_p, max_new_tokens=self.max_new, repetition_penalty=self.rep,
                    system=self.system)


NARROW_PX = 768  # below this width (a phone) the settings start folded, so the chat comes first


def build_layout(holder: ModelHolder, assets: Path, idle_timeout_s: float, on_expire) -> Page:
    """The components, inside an open gr.Blocks. Each section is one small function writing into `c`,
    so a new control joins the section it belongs to (e.g. a strategy selector beside Frames)."""
    c: dict = {}
    c["state"] = gr.State(None, time_to_live=idle_timeout_s, delete_callback=on_expire)
    c["viewport"] = gr.Number(None, visible=False)  # the window's width, read once at load (events.on_viewport)
    c["page_state"] = gr.HTML(INITIAL_STATE, elem_id="page-state", visible="hidden", padding=False, js_on_load=None)
    _header(c, holder)
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, min_width=320):
            _conversation(c, assets, holder.limits)
        with gr.Column(scale=5, min_width=320):
            with gr.Accordion("Settings: what the model sees", open=True, elem_id="settings") as c["settings"]:
                _view_settings(c, holder.limits)
                _model_view(c)
            with gr.Accordion("Generation", open=False, elem_id="generation"):
                _generation(c, holder.limits)
            with gr.Accordion("Compare: re-ask the last question with other settings", open=False, elem_id="compare-box"):
                _compare(c)
    return Page(**c)


def _header(c: dict, holder: ModelHolder) -> None:
    # the first stop of the Tab key: straight to the question, past the player's seven controls
    gr.HTML('<a class="skip-link" href="#question">Skip to the question</a>', elem_id="skip", padding=False)
    gr.Markdown("# PLLaVA Studio\nTalk with a video, and watch what frames, pooling and LoRA alpha "
                "change in what the model sees and says.", elem_id="intro")
    # "Model: ..." arrives with the sliders' checkpoint values in one update (on_page_load): a page built
    # after the model loaded said it at once, and a setting changed before that update came was put back
    c["status"] = gr.Markdown(f"**Loading `{holder.name}`**", elem_id="model-status")


def _conversation(c: dict, assets: Path, limits) -> None:
    """The video, the chat and the question box: on a phone, all of the first screen."""
    most = f"at most {limits.max_file_mb:g} MB"  # said before anyone tries a bigger file (short: one line on a phone)
    with gr.Tabs():
        with gr.Tab("Video"):
            c["video"] = gr.Video(sources=["upload", "webcam"], label=f"Video, {most}",
                                  elem_id="video-input", height=220)
        with gr.Tab("Image or GIF"):
            c["upload"] = gr.File(label=f"An image, a GIF or any video, {most}", elem_id="file-input",
                                  file_types=list(UPLOAD_VIDEO_EXTENSIONS + IMAGE_EXTENSIONS))
    # no LaTeX: answers are text and time links, and KaTeX on a growing answer is work for nothing
    c["chatbot"] = gr.Chatbot(label="Chat", elem_id="chat", height=300, buttons=["copy"], latex_delimiters=[])
    with gr.Row(equal_height=True):
        c["msg"] = gr.Textbox(placeholder="Ask about the video…", label="Your question", scale=5,
                              elem_id="question", submit_btn=False, lines=1, max_lines=6)
        # While an answer streams, Send becomes Stop (one place, one button to press)
        c["send"] = gr.Button("Send", variant="primary", scale=1, elem_id="send", min_width=80)
        c["stop"] = gr.Button("Stop", variant="stop", scale=1, elem_id="stop", visible=False, min_width=80)
    # the one place for messages: problems and notices appear here, once, and stay readable, under the
    # question box and the video, where the person is looking (page_js.py reads it out: a live region)
    with gr.Column(elem_id="notice-row", min_width=0):
        c["notice"] = gr.Markdown("", elem_id="notice", visible=False)
    with gr.Row():
        c["regen"] = gr.Button("Regenerate", size="sm", elem_id="regenerate", min_width=120)  # two a row on a phone
        c["clear"] = gr.Button("Clear chat", size="sm", elem_id="clear", min_width=120)
        c["new_video"] = gr.Button("New video", size="sm", elem_id="new-video", min_width=120)
        c["download"] = gr.Button("Download chat", size="sm", elem_id="download-chat", min_width=120)
    # the chat as Markdown and JSON, with each answer's settings: shown once asked for
    c["chat_files"] = gr.File(label="Your chat (Markdown and JSON)", file_count="multiple",
                              interactive=False, visible=False, elem_id="chat-files")
    c["examples"] = None
    found = [(assets / name, label, question) for name, (label, question) in EXAMPLES.items()
             if (assets / name).is_file()]
    if found:
        c["examples"] = gr.Examples(examples=[[str(p), q] for p, _, q in found],
                                    inputs=[c["video"], c["msg"]], example_labels=[n for _, n, _ in found],
                                    label="Examples: one click loads a video and a question to ask")
    c["chapters"] = chapters_view.build()  # the chapter list, under the chat: the first screen stays as it is


def _view_settings(c: dict, limits) -> None:
    """The knobs of what the model sees, kept short (no info lines) so that at 1440x900 they, the
    panel text and the whole gallery fit on one screen: moving a slider shows its effect in view."""
    # Frames and alpha side by side, the strategy under them: three in one row cut the alpha slider's end
    # and "Thumbnail + sampling (TS-LLaVA)" at 1440 px (a slider needs ~170 px for its box and its ends)
    with gr.Row(equal_height=True, elem_id="frames-row"):
        c["frames"] = gr.Slider(4, limits.max_frames, value=NUM_FRAMES.default, step=1, label="Frames",
                                elem_id="frames-slider", min_width=170)
        c["alpha"] = gr.Slider(0, 32, value=4, step=0.5, label="LoRA alpha",
                               elem_id="alpha", min_width=170)
    # how frames become tokens: PLLaVA's pooling, or a training-free baseline (meant for alpha 0)
    c["strategy"] = gr.Dropdown([(cls.title, name) for name, cls in strategies.STRATEGIES.items()],
                                value="pllava", label="Visual tokens", elem_id="strategy")
    with gr.Column(elem_id="pool-row") as c["pool_row"]:  # PLLaVA's own knobs
        with gr.Row(equal_height=True):
            # no note under them ("a frame's 24x24 tokens, averaged to T' steps of h'xw'"): the strategy's
            # own row took that room, and the gallery stays on the first screen; the panel says the grid
            c["pool_t"] = gr.Slider(1, 16, value=16, step=1, label="Pooling T' (time)", elem_id="pool-t", min_width=120)
            c["pool_h"] = gr.Slider(1, 24, value=12, step=1, label="h' (rows)", elem_id="pool-h", min_width=120)
            c["pool_w"] = gr.Slider(1, 24, value=12, step=1, label="w' (columns)", elem_id="pool-w", min_width=120)
    c["knobs"] = {}  # the other strategies' knobs, shown with their strategy
    with gr.Row(elem_id="knobs-row"):
        for cls in strategies.STRATEGIES.values():
            for knob, (lo, hi, what) in cls.KNOBS.items():
                # the strategy is named in the selector above: the label says only what the knob is (with
                # the name too it wrapped to five lines); the largest values are capped at the context on load
                c["knobs"][knob] = gr.Slider(lo, hi, value=cls.__dataclass_fields__[knob].default, step=1,
                                             label=what[:1].upper() + what[1:], visible=False, min_width=200,
                                             elem_id="knob-" + knob.replace("_", "-"))


def _model_view(c: dict) -> None:
    """What the model sees: the numbers, the sampled frames, the token-norm heat map."""
    c["view_md"] = gr.Markdown("Upload a video to see the frames and visual tokens the model gets.",
                               elem_id="view-info")
    c["seek"] = gr.Number(None, visible=False)  # a clicked frame's time, for the player (serving.SEEK_JS)
    # 8 columns: 32 frames are 4 short rows, all on the first screen at 1440x900 (style.css: 4 on a phone)
    c["gallery"] = gr.Gallery(label="Sampled frames: click one to see it in the video", columns=8, height="auto",
                              elem_id="frames", object_fit="contain", allow_preview=False)
    _range(c)
    gr.Markdown("**Token norms per pooled time step**: one tile per T' step, colour scale underneath "
                "(purple low, yellow high: the paper's high-norm tokens)",
                elem_classes=["slider-note"], elem_id="heatmap-label")
    c["heatmap"] = gr.Image(show_label=False, type="pil", elem_id="heatmap", height=200, interactive=False,
                            buttons=[], alt_text=HEATMAP_ALT)
    c["strategy_image"] = gr.Image(label="The image the strategy builds (one CLIP pass)", type="pil",
                                   elem_id="strategy-image", height=200, interactive=False, visible=False,
                                   buttons=[])


def _range(c: dict) -> None:
    """Focus on a part: typed seconds, or two frames chosen in the gallery (under it, where they are picked)."""
    with gr.Row(equal_height=True, elem_id="range-row"):  # blank is the video's own start / end
        # text boxes, not gr.Number: a Number shows blank as 0, and "0 to 0" is no range
        c["start"] = gr.Textbox("", label="Only from (s)", placeholder="start", elem_id="range-start",
                                min_width=90, max_lines=1)
        c["end"] = gr.Textbox("", label="to (s), Enter to apply", placeholder="end", elem_id="range-end",
                              min_width=90, max_lines=1)
    with gr.Row(elem_id="range-buttons"):  # or two frames chosen in the gallery: click one, then one of these
        c["from_frame"] = gr.Button("From the clicked frame", size="sm", elem_id="range-from-frame")
        c["to_frame"] = gr.Button("To the clicked frame", size="sm", elem_id="range-to-frame")
        c["whole"] = gr.Button("Whole video", size="sm", elem_id="range-whole")



def _generation(c: dict, limits) -> None:
    """The sliders start at the settings table's defaults and stay inside its ranges (a narrower
    temperature range than the API's (0, 5]: past 2 the answers are noise)."""
    gen = GENERATION
    c["do_sample"] = gr.Checkbox(gen["do_sample"].default, label="Sampling",
                                 info="Off: greedy, the same answer every time.")
    c["temperature"] = gr.Slider(0.05, 2.0, value=gen["temperature"].default, step=0.05, label="Temperature",
                                 info="Higher is more varied (only with sampling).")
    c["top_p"] = gr.Slider(0.05, gen["top_p"].hi, value=gen["top_p"].default, step=0.05, label="Top-p",
                           info="Sample from the smallest set of tokens with this much probability.")
    c["max_new"] = gr.Slider(gen["max_new_tokens"].lo, limits.max_new_tokens, step=1,
                             value=min(gen["max_new_tokens"].default, limits.max_new_tokens),
                             label="Max new tokens", info="Longest answer, in tokens.", elem_id="max-new")
    rep = gen["repetition_penalty"]
    c["rep"] = gr.Slider(rep.lo, rep.hi, value=rep.default, step=0.05, label="Repetition penalty",
                         info="Above 1 discourages repeating words.")
    c["system"] = gr.Textbox(DEFAULT_SYSTEM, lines=4, label="System prompt",
                             info="Instructions given before the video.")


def _compare(c: dict) -> None:
    gr.Markdown("A is the current settings; B changes only what you set here (same video, same earlier turns).")
    with gr.Row():
        c["alpha_b"] = gr.Slider(0, 32, value=20, step=0.5, label="B: LoRA alpha")
        c["pool_h_b"] = gr.Slider(1, 24, value=6, step=1, label="B: pooling h'")
        c["pool_w_b"] = gr.Slider(1, 24, value=6, step=1, label="B: pooling w'")
    c["strategy_b"] = gr.Dropdown([("Same as A", "")] + [(cls.title, name) for name, cls in strategies.STRATEGIES.items()],
                                  value="", label="B: visual tokens (its own default settings)", elem_id="strategy-b")
    c["compare_btn"] = gr.Button("Compare", variant="secondary", elem_id="compare")
    with gr.Row():
        c["answer_a"] = gr.Markdown(elem_id="compare-a")
        c["answer_b"] = gr.Markdown(elem_id="compare-b")
