"""Every setting of PLLaVA Studio in one table: its name, type, range or choices, default, the sentence
a bad value gets, its command-line flag, its environment variable and its help.

Everything else is built from here: the API's parsing (api_types), `GenerationSettings` and `Limits`
(config), the page's sliders (ui/layout), the flags of `python app.py`, `python -m pllava_demo ...`
and `serve` (`add_flags`, `from_args`). A value is checked by `Setting.check` (typed JSON-like values)
or `Setting.parse` (text from a flag or the environment); both refuse with the one sentence
"<name> must be <what>, got <value>." that `Setting.refusal` writes.

The bottom layer: imports only the project's errors and the standard library. It knows nothing about
the records built from it (they name their own fields after the settings here), nor about gradio,
torch or the engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InputError

MAX_SEED = 2**32 - 1  # what every sampler backend accepts as a seed
MAX_TIME_S = 24 * 3600.0  # a time in a video: far beyond any video the server accepts
MAX_NEW_TOKENS = 4096  # the longest answer any setting or limit allows
MAX_LORA_ALPHA = 256.0  # the paper sweeps 0-32 (trained at 32); well past that the LoRA swamps the model
DEFAULT_FRAMES = 16  # the official frame count: every PLLaVA checkpoint is trained and evaluated at 16

# files a person may hand the Studio (an upload, an API media part) and what counts as a video in a folder
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
UPLOAD_VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif")
VIDEO_EXTENSIONS = frozenset(UPLOAD_VIDEO_EXTENSIONS + (
    ".m4v", ".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".3gp", ".ogv"))
HUB_ID = re.compile(r"[\w.\-]+/[\w.\-]+")  # "owner/name" of a Hugging Face Hub repo


def is_hub_id(text) -> bool:
    return HUB_ID.fullmatch(str(text)) is not None


def show(value, limit: int = 40) -> str:
    """A value as a message quotes it: its repr, cut short (a payload may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    """One setting. `hi=None` where the upper bound is the server's or the checkpoint's (a limit passes
    it to `check`); `optional`: None is a value (the video's own start, a random seed, no API key)."""

    name: str
    kind: type  # bool, int, float or str
    default: object = None
    lo: float | None = None
    hi: float | None = None
    open_low: bool = False  # (lo, hi] instead of [lo, hi]
    choices: tuple[str, ...] = ()
    optional: bool = False
    flag: str | None = None
    env: str | None = None
    help: str = ""
    label: str | None = None  # how the sentence names it, when not by `name`
    metavar: str | None = None

    def named(self, label: str) -> "Setting":
        """The same setting under another name (an OpenAI field: max_tokens for max_new_tokens)."""
        return dataclasses.replace(self, label=label)

    @property
    def dest(self) -> str:
        """The attribute argparse gives the flag's value."""
        return self.flag.lstrip("-").replace("-", "_") if self.flag else self.name

    def what(self, hi=None) -> str:
        hi = self.hi if hi is None else hi
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is str:
            return "text"
        if self.kind is int:
            lo = int(self.lo)
            return f"a whole number {lo}-{int(hi)}" if hi is not None else f"a whole number >= {lo}"
        if hi is None:
            return f"a number {'>' if self.open_low else '>='} {self.lo:g}"
        return f"a number in {'(' if self.open_low else '['}{self.lo:g}, {hi:g}]"

    def refusal(self, value, hi=None) -> str:
        """The one sentence a bad value of this setting gets."""
        return f"{self.label or self.name} must be {self.what(hi)}, got {show(value)}."

    def check(self, value, *, hi=None, error: type[Exception] = InputError):
        """`value` typed and in range; else `error` with the refusal. Strict as JSON is: 8.0 is the whole
        number 8, but "8", true for a number, 7.9, NaN, Infinity and 10**400 are refused."""
        if value is None and self.optional:
            return None
        typed = self._typed(value)
        if typed is None or not self._in_range(typed, self.hi if hi is None else hi):
            raise error(self.refusal(value, hi))
        return typed

    def parse(self, text: str, *, error: type[Exception] = InputError):
        """A value given as text (a flag, an environment variable) -> check; refused quoting the text."""
        if self.optional and text in ("", None):
            return None
        word = str(text).strip()
        if self.kind is bool:
            value = True if word.lower() in _TRUE else False if word.lower() in _FALSE else None
        elif self.kind in (int, float):
            try:
                value = float(word) if self.kind is float else int(word)
            except ValueError:
                value = None
        else:
            value = text
        if value is None or self._typed(value) is None or not self._in_range(self._typed(value), self.hi):
            raise error(self.refusal(text))
        return self._typed(value)

    def _typed(self, value):
        if self.kind is bool:
            return value if isinstance(value, bool) else None
        if self.kind is str:
            return value if isinstance(value, str) else None
        # bool is an int in Python, but `true` for a number is a client's mistake, not 1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if self.kind is int and isinstance(value, int):
            return value
        try:
            f = float(value)
        except OverflowError:  # an int too large for a float
            return None
        if not math.isfinite(f) or (self.kind is int and not f.is_integer()):
            return None
        return int(f) if self.kind is int else f

    def _in_range(self, value, hi) -> bool:
        if self.choices:
            return value in self.choices
        if self.kind in (bool, str) or self.lo is None:
            return True
        low_ok = value > self.lo if self.open_low else value >= self.lo
        return low_ok and (hi is None or value <= hi)


def table(*settings: Setting) -> dict[str, Setting]:
    return {s.name: s for s in settings}


def _time(name: str, flag: str, help: str) -> Setting:
    return Setting(name, float, None, 0.0, MAX_TIME_S, optional=True, flag=flag, metavar="SECONDS", help=help,
                   label=f"{name} (seconds into the video, or null for the whole video)")


# How to pick tokens: GenerationSettings' fields; max_new_tokens' and min_new_tokens' upper bounds are
# the server's limit and max_new_tokens (passed to check).
GENERATION = table(
    Setting("do_sample", bool, False, flag="--sample", help="sample instead of greedy decoding"),
    Setting("temperature", float, 0.7, 0.0, 5.0, open_low=True, flag="--temperature",
            help="higher is more varied (only with --sample)"),
    Setting("top_p", float, 0.9, 0.0, 1.0, open_low=True, flag="--top-p",
            help="sample from the smallest set of tokens with this much probability"),
    Setting("max_new_tokens", int, 512, 1, MAX_NEW_TOKENS, flag="--max-new-tokens", help="longest answer, in tokens"),
    Setting("repetition_penalty", float, 1.0, 0.5, 2.0, flag="--repetition-penalty",
            help="above 1 discourages repeating words"),
    Setting("min_new_tokens", int, 0, 0, MAX_NEW_TOKENS, flag="--min-new-tokens",
            help="forbid stopping before this many tokens"),
    Setting("seed", int, None, 0, MAX_SEED, optional=True, flag="--seed", help="seed of the sampler"),
)

# What the model sees of a video, and the chat's own settings (the API's other fields).
VIEW = table(
    Setting("num_frames", int, DEFAULT_FRAMES, 1, flag="--frames",
            help=f"frames sampled from the video (default {DEFAULT_FRAMES}, or the most the strategy fits)"),
    Setting("lora_alpha", float, None, 0.0, MAX_LORA_ALPHA, flag="--lora-alpha",
            help="LoRA strength (official: 4; 0 = image LLaVA; default: the checkpoint's)"),
    Setting("system", str, None, flag="--system", help="system prompt (default: the official demo's)"),
    _time("start_s", "--start", "sample only from this time on (default: the video's start)"),
    _time("end_s", "--end", "sample only up to this time (default: the video's end)"),
)
NUM_FRAMES, LORA_ALPHA, START_S, END_S = VIEW["num_frames"], VIEW["lora_alpha"], VIEW["start_s"], VIEW["end_s"]


def check_time_range(start_s, end_s, *, error: type[Exception] = InputError) -> tuple[float | None, float | None]:
    """The part of a video to sample, [start_s, end_s] in seconds (None: the video's own start / end): each
    end a number of seconds, and the range starting before it ends. Whether it lies inside the video is
    the video's to say (frames/checks.range_ordinals)."""
    start_s, end_s = START_S.check(start_s, error=error), END_S.check(end_s, error=error)
    if start_s is not None and end_s is not None and not start_s < end_s:
        raise error(f"The time range must start before it ends: start_s {start_s:g} s, end_s {end_s:g} s.")
    return start_s, end_s


def _limit(name: str, kind: type, default, flag: str | None, env: str | None, help: str, hi=None) -> Setting:
    # a whole number > 0 is one >= 1 (and is said so)
    return Setting(name, kind, default, 1 if kind is int else 0, hi, open_low=kind is float, flag=flag, env=env,
                   help=help)


# The limits that protect a shared server: config.Limits' fields, each > 0.
LIMITS = table(
    _limit("max_file_mb", float, 200.0, "--max-file-size", "PLLAVA_MAX_FILE_MB", "largest upload or media file in MB"),
    _limit("max_duration_s", float, 3 * 3600.0, "--max-duration", "PLLAVA_MAX_DURATION_S", "longest video in seconds"),
    _limit("max_frames", int, 32, "--max-frames", "PLLAVA_MAX_FRAMES", "most frames sampled from a video"),
    _limit("max_question_chars", int, 4000, "--max-question-chars", "PLLAVA_MAX_QUESTION_CHARS",
           "longest question in characters"),
    _limit("max_system_chars", int, 8000, None, None, "longest system prompt in characters"),
    _limit("max_prompt_chars", int, 64000, None, None,
           "system + history + question in characters; older turns are left out past it"),
    _limit("max_new_tokens", int, 1024, "--max-new-tokens", "PLLAVA_MAX_NEW_TOKENS", "longest answer in tokens",
           hi=MAX_NEW_TOKENS),
    _limit("decode_time_budget_s", float, 60.0, "--decode-time-budget", "PLLAVA_DECODE_BUDGET_S",
           "seconds allowed to decode one video"),
    _limit("feature_cache_mb", float, 2048.0, "--feature-cache-mb", "PLLAVA_FEATURE_CACHE_MB",
           "memory for encoded videos shared by all sessions, least recently used dropped first"),
    _limit("kv_cache_mb", float, 4096.0, "--kv-cache-mb", "PLLAVA_KV_CACHE_MB",
           "memory for the sessions' KV caches, least recently used dropped first"),
    _limit("upload_budget_mb", float, 10240.0, "--upload-budget-mb", "PLLAVA_UPLOAD_BUDGET_MB",
           "disk for the upload folder in all (uploads, thumbnails, heat maps); a full one answers "
           "'the server is busy'"),
    _limit("upload_grace_s", float, 300.0, "--upload-grace", "PLLAVA_UPLOAD_GRACE_S",
           "seconds before a file no session holds (an unused upload, a thumbnail) is deleted"),
    _limit("max_pixels", int, 7680 * 4320, "--max-pixels", "PLLAVA_MAX_PIXELS",
           "most pixels in one frame or image, read from its header before decoding (7680x4320 = 8K)"),
    _limit("max_upload_files", int, 10_000, "--max-upload-files", "PLLAVA_MAX_UPLOAD_FILES",
           "files in the upload folder in all"),
    _limit("max_files_per_upload", int, 16, "--max-files-per-upload", "PLLAVA_MAX_FILES_PER_UPLOAD",
           "files in one upload request"),
    _limit("max_request_kb", float, 1024.0, "--max-request-kb", "PLLAVA_MAX_REQUEST_KB",
           "largest body of a request that is not an upload, refused before it is parsed"),
    _limit("body_timeout_s", float, 30.0, "--body-timeout", "PLLAVA_BODY_TIMEOUT_S",
           "seconds a request body may send nothing before it is ended"),
    _limit("max_sessions", int, 256, "--max-sessions", "PLLAVA_MAX_SESSIONS",
           "live sessions; past it the least recently used one is closed"),
)

# Which model, on what: the flags of every command that loads one.
MODEL = table(
    Setting("model", str, "ermu2001/pllava-7b", flag="--model", env="PLLAVA_MODEL",
            help="Hub repo id or local checkpoint folder"),
    Setting("device", str, "auto", choices=("auto", "cpu", "cuda"), flag="--device", env="PLLAVA_DEVICE",
            help="where the model runs"),
    Setting("quantization", str, "auto", choices=("auto", "none", "4bit"), flag="--quantization",
            env="PLLAVA_QUANTIZATION",
            help="auto = 4-bit nf4 on a CUDA GPU of your own, none (bf16) on ZeroGPU and on CPU"),
    Setting("cpu_dtype", str, "auto", choices=("auto", "float32", "bfloat16"), flag="--cpu-dtype",
            env="PLLAVA_CPU_DTYPE",
            help="weights' dtype on CPU: auto = float32 where it fits in RAM, else bfloat16; bfloat16 is faster "
                 "to read prompts on CPUs with native bf16 (AMX, AVX512-BF16); the page says which"),
    Setting("threads", int, 0, 0, flag="--threads", env="PLLAVA_THREADS",
            help="CPU threads for torch; 0 = torch's choice (on a busy CPU fewer is faster)"),
)
QUANTIZATION, CPU_DTYPE = MODEL["quantization"], MODEL["cpu_dtype"]

# How a server listens and queues (app.py and `serve`; their defaults differ only in the port and host).
SERVER = table(
    Setting("host", str, "127.0.0.1", flag="--host", env="PLLAVA_HOST", help="address to listen on"),
    Setting("port", int, 7860, 1, 65535, flag="--port", env="PLLAVA_PORT", help="port to listen on"),
    Setting("concurrency", int, 2, 1, flag="--concurrency", env="PLLAVA_CONCURRENCY",
            help="answers generated at once, decoded together as one batch"),
    Setting("max_queue", int, 32, 0, flag="--max-queue", env="PLLAVA_MAX_QUEUE",
            help="requests waiting at most; one more is refused (429 on the API)"),
)

# The page's own server (app.py).
PAGE = table(
    Setting("share", bool, False, flag="--share", env="PLLAVA_SHARE",
            help="also serve through a public gradio.live link"),
    Setting("upload_dir", str, "", flag="--upload-dir", env="PLLAVA_UPLOAD_DIR",
            help="the app's own folder for uploads and every file written for a visitor; emptied at start "
                 "(else GRADIO_TEMP_DIR, else <tmp>/pllava-studio-<port>)"),
    Setting("idle_timeout", float, 3600.0, 0, open_low=True, flag="--idle-timeout", env="PLLAVA_IDLE_TIMEOUT_S",
            help="seconds before an idle session's video and chat are freed"),
    Setting("debug_stats", bool, False, flag="--debug-stats",
            help="add the engine's work counters to /status, for your own tests; never on a public server "
                 "(cache hits tell whether someone uploaded the same bytes)"),
)

# The OpenAI-compatible API (openai_api/flags.py builds its ApiSettings from these).
API = table(
    Setting("no_openai_api", bool, False, flag="--no-openai-api", env="PLLAVA_NO_OPENAI_API",
            help="do not serve the OpenAI-compatible API under /v1"),
    Setting("api_key", str, None, optional=True, flag="--api-key", env="PLLAVA_API_KEY",
            help="require 'Authorization: Bearer KEY' on /v1 (default: no key)"),
    Setting("allowed_media_dir", str, None, optional=True, flag="--allowed-media-dir", env="PLLAVA_ALLOWED_MEDIA_DIR",
            help="API media may be local paths inside this folder (default: none)"),
    Setting("allow_media_urls", bool, False, flag="--allow-media-urls", env="PLLAVA_ALLOW_MEDIA_URLS",
            help="API media may be http(s) URLs, fetched by the server"),
    Setting("media_timeout", float, 30.0, 0, open_low=True, flag="--media-timeout", env="PLLAVA_MEDIA_TIMEOUT_S",
            help="seconds a media URL may take to connect and between reads"),
)


# -- the command line ------------------------------------------------------------------------------
class _FlagValue:
    """argparse's `type=`: the setting's parse, refusing with the table's sentence."""

    def __init__(self, setting: Setting):
        self.setting = setting
        self.__name__ = setting.kind.__name__  # what argparse names in "invalid <type> value"

    def __call__(self, text: str):
        return self.setting.parse(text, error=argparse.ArgumentTypeError)


def env_value(setting: Setting, default=None):
    """The setting's environment variable as text when it is set, else `default`."""
    if setting.env and setting.env in os.environ:
        return os.environ[setting.env]
    return default


def add_flags(parser: argparse.ArgumentParser, settings: Iterable[Setting], **defaults) -> None:
    """Each setting's flag on `parser`: its default is the environment variable when set, else `defaults`'
    value for its name (a command's own, e.g. port=8000), else the table's. A bad value, typed or from the
    environment, is refused by argparse with the table's sentence."""
    for s in settings:
        if not s.flag:
            continue
        default = env_value(s, defaults.get(s.name, s.default))
        if s.kind is bool:
            if isinstance(default, str):  # from the environment: PLLAVA_SHARE=1
                try:
                    default = s.parse(default)
                except InputError as e:
                    parser.error(f"{s.env}: {e}")
            said = f" (env {s.env}=1)" if s.env else ""
            parser.add_argument(s.flag, action="store_true", default=default, help=s.help + said)
            continue
        said = [f"env {s.env}"] if s.env else []
        if default is not None:
            said.append("default %(default)s")
        parser.add_argument(s.flag, type=_FlagValue(s), default=default,
                            help=s.help + (f" ({'; '.join(said)})" if said else ""),
                            metavar=s.metavar or ("{" + ",".join(s.choices) + "}" if s.choices else None))


def from_args(args, settings: Iterable[Setting]) -> dict:
    """{setting name: value} for the settings whose flags `args` holds (a record's keyword arguments)."""
    return {s.name: getattr(args, s.dest) for s in settings if s.flag and hasattr(args, s.dest)}

