"""Every failure a person sees is one readable line: project errors as written, anything else a
generic sentence (the traceback goes to the log). `guard` is the one wrapper that does it, for every
door of the gradio server: the named API raises the line as a gr.Error; the page shows it in its one
notice box instead (events.py passes `shown`), so nothing turns red elsewhere."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

import gradio as gr

from ..errors import PllavaError
from ..studio.model_holder import one_line

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on the server; please try again (the details are in the server log)."


def message(e: Exception, name: str) -> str:
    """Any exception -> the line a user reads. Project errors are written for people; anything else
    is a bug or a library failure: logged with its traceback, and the user gets a generic sentence."""
    if isinstance(e, gr.Error):
        return str(e.message)
    if isinstance(e, PllavaError):
        return one_line(e)
    log.error("unexpected error in %s", name, exc_info=e)
    return UNEXPECTED


def guard(fn, shown: Callable[[tuple, str], object] | None = None):
    """Any exception of `fn` (a plain or a generator handler) becomes its one readable line:
    `shown(args, line)` returned (or yielded) in its place, or, without `shown`, raised as a gr.Error."""

    def fail(e: Exception, args: tuple):
        if shown is None:
            raise (e if isinstance(e, gr.Error) else gr.Error(message(e, fn.__name__), print_exception=False)) from None
        return shown(args, message(e, fn.__name__))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                yield fail(e, args)
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            return fail(e, args)
    return plain
