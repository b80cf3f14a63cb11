"""The page of PLLaVA Studio: the Gradio doors (page events, named endpoints) over the studio
(../studio/: the tab and its commands, the registry, the runners; no gradio there).

Plain Python, testable without a server:
  view.py       what the model sees: the panel text, the gallery, the heat map
  chat_messages.py  a tab's chat as gradio messages, and the ask command as those messages growing
  files.py      uploads, the sweeper and the disk budget
  export.py     the chat as Markdown and JSON; time_links.py: times in answers as seek links

Gradio (the only modules that import it):
  layout.py     the components, and nothing else (a `Page` of named components)
  events.py     what the page does, wired to the components (gradio's chained events)
  event_context.py  what every event uses: its context, the message line, the sliders as Options changes
  video_events.py   the model's loading, the video boxes, the time range, the sliders
  chat_events.py    ask, regenerate, Stop, Clear, New video, frame clicks, download, Compare
  api.py        the named endpoints for gradio_client
  messages.py   errors into one readable line
  upload_guard.py the upload route's disk budget, the sweeper's start
  serving.py    files, upload folder, launch settings
  page.py       build_demo: the pieces put together, with the queue

The gradio names below load on first use, so importing `pllava_demo.ui.view` never loads gradio.
"""

__all__ = ["ASSETS", "UNEXPECTED", "build_demo", "guard", "launch", "launch_kwargs", "upload_folder"]

_LAZY = {
    "UNEXPECTED": "messages", "guard": "messages", "build_demo": "page",
    "ASSETS": "serving", "launch": "serving", "launch_kwargs": "serving", "upload_folder": "serving",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pllava_demo.ui' has no attribute {name!r}")
