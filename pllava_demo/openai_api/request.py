"""A chat-completions payload (parsed JSON) -> a typed `ChatRequest`, or an `ApiError` naming the field.

The conversation becomes what the engine's session holds: an optional system prompt, earlier
(question, answer) turns, the new question and the one video (or image) of the conversation. PLLaVA's
own knobs (`num_frames`, `strategy`, `pooling`, `lora_alpha`, `start_s`, `end_s`, and vLLM's
`repetition_penalty`, `min_tokens`) come as top-level fields (what the openai client's `extra_body`
sends) and are checked by the page's own parser (api_types), one field at a time so the error names it.

Rules where OpenAI's fields and ours differ, stated once here:
- temperature 0 is greedy, > 0 samples (at most 2, OpenAI's range); absent: the server's default (greedy,
  as the official demo decodes);
- max_tokens and max_completion_tokens are the same limit (both given: they must agree);
- presence_penalty / frequency_penalty are refused unless 0 (ours is a multiplicative repetition_penalty
  in [0.5, 2], sent as an extra field); n > 1, logprobs, tools and non-text response formats are refused;
- fields OpenAI defines that change nothing here (user, store, metadata, ...) are accepted and ignored;
  any other field is refused by name.

Knows no HTTP framework, no engine and no files: media URLs are resolved by media.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import api_types
from ..errors import InputError
from ..settings import GENERATION
from .errors import bad

KNOBS = ("num_frames", "strategy", "pooling", "lora_alpha", "start_s", "end_s", "repetition_penalty")
IGNORED = ("user", "store", "metadata", "service_tier", "parallel_tool_calls", "prompt_cache_key",
           "safety_identifier", "modalities", "reasoning_effort", "verbosity")
# OpenAI fields we cannot honour: allowed only at their "off" value
OFF = {"logprobs": (None, False), "top_logprobs": (None, 0), "tools": (None, []), "tool_choice": (None, "none"),
       "functions": (None, []), "function_call": (None, "none"), "logit_bias": (None, {}), "audio": (None,),
       "prediction": (None,), "web_search_options": (None,)}
STANDARD = ("model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
            "max_completion_tokens", "seed", "stop", "n", "presence_penalty", "frequency_penalty",
            "response_format", "min_tokens")
MAX_STOP = 4
MAX_STOP_CHARS = 200


@dataclass(frozen=True)
class MediaRef:
    """The conversation's video or image, as the client named it."""

    kind: str  # "video" or "image"
    url: str
    param: str  # where it was, for errors: "messages[0].content[1].video_url.url"


@dataclass(frozen=True)
class ChatRequest:
    model: str
    system: str | None  # None: the server's default system prompt
    turns: tuple[tuple[str, str], ...]  # earlier (question, answer) pairs, oldest first
    question: str
    media: MediaRef | None
    changes: dict = field(default_factory=dict)  # settings for the page's set_options (api_types names)
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False


def _show(value) -> str:
    return api_types._show(value)


def _checked(name: str, fn, *args, **kwargs):
    """An api_types check whose InputError becomes a 400 naming the field."""
    try:
        return fn(*args, **kwargs)
    except InputError as e:
        raise bad(str(e), name) from None


def parse_request(payload, bounds: api_types.Bounds) -> ChatRequest:
    if not isinstance(payload, Mapping):
        raise bad(f"The request body must be a JSON object, got {_show(payload)}.")
    unknown = [str(k) for k in payload if k not in STANDARD + KNOBS + IGNORED + tuple(OFF)]
    if unknown:
        raise bad(f"Unknown field {_show(unknown[0])}; PLLaVA's own settings are {', '.join(KNOBS)} "
                  f"(with the openai client: extra_body).", unknown[0])
    for name, allowed in OFF.items():
        if name in payload and not any(payload[name] == v and type(payload[name]) is type(v) for v in allowed):
            raise bad(f"{name} is not supported by this server.", name)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad(f"model must be the model's name (GET /v1/models), got {_show(model)}.", "model")
    system, turns, question, media = parse_messages(payload.get("messages"))
    stream = payload.get("stream") is not None and _checked("stream", api_types.flag, "stream", payload["stream"])
    include_usage = _stream_options(payload.get("stream_options"), stream)
    changes = _generation(payload, bounds)
    for name in KNOBS:
        if name in payload:
            _checked(name, api_types.parse_changes, {name: payload[name]}, bounds)
            changes[name] = payload[name]
    if payload.get("min_tokens") is not None:  # vLLM's name for our min_new_tokens
        changes["min_new_tokens"] = _checked("min_tokens", GENERATION["min_new_tokens"].named("min_tokens").check,
                                             payload["min_tokens"], hi=bounds.max_new_tokens)
    return ChatRequest(model, system, turns, question, media, changes, _stop(payload.get("stop")), stream,
                       include_usage)


def _stream_options(value, stream: bool) -> bool:
    if value is None:
        return False
    if not stream:
        raise bad("stream_options is only allowed with stream: true.", "stream_options")
    if not isinstance(value, Mapping) or set(value) - {"include_usage", "continuous_usage_stats"}:
        raise bad(f"stream_options must be an object like {{\"include_usage\": true}}, got {_show(value)}.",
                  "stream_options")
    return _checked("stream_options.include_usage", api_types.flag, "stream_options.include_usage",
                    value.get("include_usage", False))


def _generation(payload, bounds: api_types.Bounds) -> dict:
    """The standard sampling fields as the page's settings (api_types names)."""
    out = {}
    n = payload.get("n")
    if n is not None and _checked("n", api_types.whole, "n", n, 1, 2**31) != 1:
        raise bad("n must be 1: this server writes one answer per request (send the request again for another).", "n")
    for name in ("presence_penalty", "frequency_penalty"):
        value = payload.get(name)
        if value is not None and _checked(name, api_types.real, name, value, -2.0, 2.0) != 0:
            raise bad(f"{name} is not supported (only 0); use repetition_penalty (an extra field, "
                      f"0.5-2, 1 is off) to discourage repeated tokens.", name)
    fmt = payload.get("response_format")
    if fmt is not None and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        raise bad("response_format must be {\"type\": \"text\"}: this server writes plain text.", "response_format")
    temperature = payload.get("temperature")
    if temperature is not None:
        t = _checked("temperature", api_types.real, "temperature", temperature, 0.0, 2.0)
        out["do_sample"] = t > 0
        if t > 0:
            out["temperature"] = t
    if payload.get("top_p") is not None:
        out["top_p"] = _checked("top_p", GENERATION["top_p"].check, payload["top_p"])
    limits = {name: _checked(name, GENERATION["max_new_tokens"].named(name).check, payload[name],
                             hi=bounds.max_new_tokens)
              for name in ("max_tokens", "max_completion_tokens") if payload.get(name) is not None}
    if len(set(limits.values())) > 1:
        raise bad("max_tokens and max_completion_tokens are the same limit; give one.", "max_completion_tokens")
    if limits:
        out["max_new_tokens"] = next(iter(limits.values()))
    if payload.get("seed") is not None:
        out["seed"] = _checked("seed", GENERATION["seed"].check, payload["seed"])
    return out


def _stop(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if (not isinstance(items, list) or not 0 < len(items) <= MAX_STOP
            or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items)):
        raise bad(f"stop must be a string or a list of up to {MAX_STOP} non-empty strings of at most "
                  f"{MAX_STOP_CHARS} characters, got {_show(value)}.", "stop")
    return tuple(items)


# -- messages ---------------------------------------------------------------------------------------------
def parse_messages(messages) -> tuple[str | None, tuple[tuple[str, str], ...], str, MediaRef | None]:
    """(system, earlier turns, question, media). Consecutive user messages are one user turn (their texts
    joined by a newline); after the system message, turns alternate user / assistant and end with a user."""
    if not isinstance(messages, list) or not messages:
        raise bad(f"messages must be a non-empty list of messages, got {_show(messages)}.", "messages")
    system, media, turns = None, None, []
    question: list[str] | None = None
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise bad(f"{where} must be an object with a role and content, got {_show(m)}.", where)
        role = m.get("role")
        if role in ("system", "developer"):
            if i != 0:
                raise bad(f"{where}: a system message may only come first.", f"{where}.role")
            system = "\n".join(_texts(m.get("content"), where, allow_media=False)[0])
        elif role == "user":
            texts, found = _texts(m.get("content"), where, allow_media=True)
            if found is not None:
                if media is not None:
                    raise bad(f"{where}: one video or image per conversation (the first is in {media.param}).",
                              found.param)
                media = found
            question = (question or []) + texts
        elif role == "assistant":
            if question is None:
                raise bad(f"{where}: an assistant message must follow a user message.", f"{where}.role")
            answer = "\n".join(_texts(m.get("content"), where, allow_media=False)[0])
            turns.append(("\n".join(question), answer))
            question = None
        else:
            raise bad(f"{where}.role must be system, user or assistant, got {_show(role)}.", f"{where}.role")
    if question is None:
        raise bad("The last message must be the user's question.", f"messages[{len(messages) - 1}].role")
    return system, tuple(turns), "\n".join(question), media


def _texts(content, where: str, *, allow_media: bool) -> tuple[list[str], MediaRef | None]:
    """A message's text parts, and its one media part (user messages only)."""
    if isinstance(content, str):
        return [content], None
    if not isinstance(content, list):
        raise bad(f"{where}.content must be text or a list of content parts, got {_show(content)}.", f"{where}.content")
    texts, media = [], None
    for k, part in enumerate(content):
        at = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise bad(f"{at}.text must be text, got {_show(part.get('text'))}.", f"{at}.text")
            texts.append(part["text"])
        elif kind in ("video_url", "image_url") and allow_media:
            ref = part.get(kind)
            url = ref.get("url") if isinstance(ref, Mapping) else None
            if not isinstance(url, str) or not url:
                raise bad(f"{at}.{kind} must be an object like {{\"url\": \"data:video/mp4;base64,...\"}}, "
                          f"got {_show(ref)}.", f"{at}.{kind}.url")
            if media is not None:
                raise bad(f"{at}: one video or image per conversation.", f"{at}.{kind}")
            media = MediaRef(kind.removesuffix("_url"), url, f"{at}.{kind}.url")
        else:
            allowed = "text, video_url or image_url" if allow_media else "text"
            raise bad(f"{at} must be a content part of type {allowed}, got {_show(part)}.", f"{at}.type")
    return texts, media
