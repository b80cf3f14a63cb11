"""The OpenAI-compatible chat API on the page's engine: `POST /v1/chat/completions` (streamed as
server-sent events, or whole) and `GET /v1/models`, answered by the same scheduler as the page.

  request.py        a payload -> a typed ChatRequest (errors name the field)
  media.py          data: URLs, allowed local paths, http(s) downloads -> a file for one request
  conversations.py  automatic prefix caching: follow-ups go to the studio that wrote the earlier turns
  service.py        one request as the studio's commands (settings, video, answer), usage, stops
  routes.py         the FastAPI routes, Bearer key, SSE, OpenAI's error shape
  flags.py          the flags (app.py and `serve`); serve.py: `python -m pllava_demo serve` (API only)

`mount(app, holder, settings)` adds the routes to any FastAPI app (gradio's, or serve's own). Importing
this package loads nothing heavy: the routes load when mounted.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
ROUTES = ("/v1/models", "/v1/chat/completions")  # what mount adds (a server's route allow-list needs them)


def mount(app, holder, settings):
    """Add the /v1 routes to `app` (a FastAPI app) for the model `holder` loads (studio.model_holder.ModelHolder);
    returns the ChatService. On ZeroGPU the routes refuse with one sentence (routes.ZEROGPU)."""
    from ..studio.zerogpu_runner import forks_per_call
    from .routes import ZEROGPU, make_router
    from .service import ChatService

    service = ChatService(holder, settings)
    refuse = ZEROGPU if forks_per_call() else None
    app.include_router(make_router(service, refuse=refuse))
    if refuse:
        log.warning(refuse)
    elif settings.exposed and settings.api_key is None:
        log.warning("The OpenAI-compatible API at /v1 is reachable beyond this machine without a key: anyone who "
                    "can reach the port can run the model. Give --api-key KEY (or PLLAVA_API_KEY), or "
                    "--no-openai-api.")
    return service
