"""The Gradio page of PLLaVA Studio: the only package that imports gradio.

The work is done by the plain functions of `ui_handlers` (and the pictures by `ui_view`); this
package lays out the page, wires events to them, and serves it. It knows nothing of argv (app.py).

  layout.py   the components, and nothing else (a `Page` of named components)
  events.py   what the page does: one function per event, reading and writing components by name
  api.py      the named endpoints for gradio_client (model work runs through ../gpu_calls.py)
  messages.py errors into one readable line
  serving.py  files, upload folder, launch settings
  page.py     build_demo: the pieces put together, with the queue
"""

from .messages import UNEXPECTED, guard
from .page import build_demo
from .serving import ASSETS, launch, launch_kwargs, upload_folder

__all__ = ["ASSETS", "UNEXPECTED", "build_demo", "guard", "launch", "launch_kwargs", "upload_folder"]
