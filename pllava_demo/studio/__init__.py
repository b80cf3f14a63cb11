"""The studio: what a tab (a browser tab, an API client, a CLI chat, an OpenAI conversation) can do,
written once, with no door's knowledge in it.

  refusals      ../refusals.py: every sentence a refused command says (the engine says them too)
  options.py    Options: the tab's settings, typed and in range, and the checkpoint's defaults
  tab.py        Tab and its commands: upload, set options, ask, regenerate, compare, stop, clear, turns
  registry.py   the one owner of every tab: atomic get-or-create by tab id, bounded, closing what it drops
  model_holder.py  the model loaded in the background, its status line, the server's status
  runner.py     LocalRunner: the model's work done in this process (encode, answer, compare)
  zerogpu_runner.py  the same work as ZeroGPU calls: the one module that knows `spaces`, forked workers,
                pickling and worker mirrors
  chapters_scope.py  a tab's chapters and question scope

Knows no gradio, HTTP or argparse: errors are the project's `PllavaError`s and progress is a plain
`(fraction, text)` callable; the doors (ui/, openai_api/, cli.py) turn both into their own. Importing
this package loads nothing (app.py imports zerogpu_runner before torch).
"""
