"""Every failure a person sees is one readable line: project errors as written, anything else a
generic sentence (the traceback goes to the log). `guard` does it for the API (gr.Error); the page
shows the same line in its one notice box instead (see events.py), so nothing turns red elsewhere."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from . import handlers as H
from ..errors import PllavaError

log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on the server; please try again (the details are in the server log)."


def message(e: Exception, name: str) -> str:
    """Any exception -> the line a user reads. Project errors are written for people; anything else
    is a bug or a library failure: logged with its traceback, and the user gets a generic sentence."""
    if isinstance(e, gr.Error):
        return str(e.message)
    if isinstance(e, PllavaError):
        return H.one_line(e)
    log.error("unexpected error in %s", name, exc_info=e)
    return UNEXPECTED


def _error(e: Exception, name: str) -> gr.Error:
    return e if isinstance(e, gr.Error) else gr.Error(message(e, name), print_exception=False)


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
