"""Moved: the tab and its commands live in pllava_demo/studio/ (tab.py, options.py, registry.py,
model_holder.py). This name stays only for openai_api/serve.py's import of ModelHolder until that
file's owner points it at studio.model_holder; nothing else may import from here."""

from ..studio.model_holder import ModelHolder  # noqa: F401
